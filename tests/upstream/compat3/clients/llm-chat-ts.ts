// Driver for templates/llm-chat-ts: procedures (with withTx, return values and SenderError),
// per-sender views over private tables built with the query builder (ctx.from…where), a
// reducer with optional arguments, and a procedure whose outbound HTTP request the server
// refuses (no --http-allow for this database): the module records the transport error.
import { DbConnection, tables } from "./module_bindings/index";
import {
  check,
  connect,
  DB_NAME,
  expect,
  finish,
  rejection,
  subscribe,
  waitFor,
  WS_URL,
} from "./_check";

type Conn = DbConnection;
const open = () => connect<Conn>(DbConnection.builder().withUri(WS_URL).withDatabaseName(DB_NAME));

const ada = await open();
const bo = await open();
await subscribe(ada.conn, [tables.chat, tables.message]);
await subscribe(bo.conn, [tables.chat, tables.message]);
let chatId = 0n;

await check(
  "get_llm_config_status returns the procedure's object for an unconfigured caller",
  async () => {
    const status = await ada.conn.procedures.getLlmConfigStatus({});
    expect(status.configured === false, `configured: ${status.configured}`);
    expect(status.provider === undefined && status.model === undefined, "fields of no config");
  },
);

await check(
  "set_llm_config validates and stores; the status procedure then reports it",
  async () => {
    const unknown = await rejection(
      ada.conn.reducers.setLlmConfig({
        provider: "nope",
        model: "m",
        apiKey: "k",
        systemPrompt: undefined,
      }),
    );
    expect(unknown.includes("llm.unknown_provider:nope"), `error was: ${unknown}`);
    const noKey = await rejection(
      ada.conn.reducers.setLlmConfig({
        provider: "openai",
        model: "m",
        apiKey: undefined,
        systemPrompt: undefined,
      }),
    );
    expect(noKey.includes("llm.api_key_required"), `error was: ${noKey}`);
    await ada.conn.reducers.setLlmConfig({
      provider: "openai",
      model: "gpt-test",
      apiKey: "sk-test",
      systemPrompt: "Be brief.",
    });
    const status = await ada.conn.procedures.getLlmConfigStatus({});
    expect(status.configured === true && status.model === "gpt-test", JSON.stringify(status.model));
    expect(status.systemPrompt === "Be brief.", `systemPrompt ${status.systemPrompt}`);
  },
);

await check(
  "create_chat returns the new id and the chat view shows it to its owner only",
  async () => {
    chatId = await ada.conn.procedures.createChat({});
    expect(typeof chatId === "bigint" && chatId > 0n, `id ${chatId}`);
    await waitFor("ada's chat row", () => ada.conn.db.chat.count() === 1n);
    const row = [...ada.conn.db.chat.iter()][0];
    expect(row.id === chatId && row.title === "New chat", `row ${row.id} ${row.title}`);
    expect(bo.conn.db.chat.count() === 0n, "bo sees ada's chat");
  },
);

await check("send_message validates before any transaction", async () => {
  const empty = await rejection(ada.conn.procedures.sendMessage({ chatId, content: "  " }));
  expect(empty.includes("llm.message_required"), `error was: ${empty}`);
  const notMine = await rejection(bo.conn.procedures.sendMessage({ chatId, content: "hi" }));
  expect(notMine.includes("llm.not_configured"), `error was: ${notMine}`);
});

await check(
  "send_message stores the user's message, retitles the chat and records a refused fetch",
  async () => {
    await ada.conn.procedures.sendMessage({ chatId, content: "Hello   there, model" });
    await waitFor("two messages at ada", () => ada.conn.db.message.count() === 2n);
    const rows = [...ada.conn.db.message.iter()].sort((a, b) => (a.id < b.id ? -1 : 1));
    expect(rows[0].role === "user" && rows[0].content === "Hello   there, model", "the user row");
    expect(rows[1].role === "assistant" && rows[1].isError, "an error row from the assistant");
    expect(rows[1].content.startsWith("LLM transport error:"), rows[1].content);
    expect(
      rows[1].content.includes("api.openai.com"),
      `the refusal names the host: ${rows[1].content}`,
    );
    await waitFor(
      "the new title",
      () => [...ada.conn.db.chat.iter()][0]?.title === "Hello there, model",
    );
    expect(bo.conn.db.message.count() === 0n, "bo sees ada's messages");
  },
);

await check("delete_chat checks ownership, then removes the chat and its messages", async () => {
  const text = await rejection(bo.conn.reducers.deleteChat({ chatId }));
  expect(text.includes(`llm.not_chat_owner:${chatId}`), `error was: ${text}`);
  await ada.conn.reducers.deleteChat({ chatId });
  await waitFor("ada's chat gone", () => ada.conn.db.chat.count() === 0n);
  await waitFor("ada's messages gone", () => ada.conn.db.message.count() === 0n);
});

ada.conn.disconnect();
bo.conn.disconnect();
finish();
