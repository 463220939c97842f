/**
 * The React client of the matrix (bundled by support.ts with react and react-dom from
 * tests/clients/npm, served by react_test.ts): a chat page written the way an app uses
 * `spacetimedb/react`: SpacetimeDBProvider around a connection builder whose token comes
 * from localStorage, useTable for the rows (with insert/update callbacks), useReducer to
 * send. Lightcone's address comes from the page's `?server=` parameter.
 */
import { type FormEvent, useState } from "react";
import { createRoot } from "react-dom/client";
import { SpacetimeDBProvider, useReducer, useSpacetimeDB, useTable } from "spacetimedb/react";
import { DbConnection, reducers, tables } from "../fixtures/bindings/chat/index.ts";
import { recordedFrames, tapWebSocketFrames } from "./driver.ts";

tapWebSocketFrames(WebSocket);
const TOKEN_KEY = "chat_token";
const callbacks: string[] = [];
Object.assign(globalThis, {
  lightconeFrames: recordedFrames,
  lightconeCallbacks: () => [...callbacks],
});

const server = new URLSearchParams(location.search).get("server") ?? "";
const connectionBuilder = DbConnection.builder()
  .withUri(server.replace(/^http/, "ws"))
  .withDatabaseName("chat")
  .withToken(localStorage.getItem(TOKEN_KEY) ?? undefined)
  .onConnect((_conn, _identity, token) => localStorage.setItem(TOKEN_KEY, token));

function Chat() {
  const { isActive, identity } = useSpacetimeDB();
  const [messages, ready] = useTable(tables.message, {
    onInsert: (row) => callbacks.push(`insert ${row.text}`),
    onUpdate: (before, after) => callbacks.push(`update ${before.text}->${after.text}`),
  });
  const [users] = useTable(tables.user);
  const sendMessage = useReducer(reducers.sendMessage);
  const [draft, setDraft] = useState("");
  const [error, setError] = useState("");
  const sorted = [...messages].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const send = (event: FormEvent) => {
    event.preventDefault();
    sendMessage({ text: draft }).then(() => setDraft(""), (e) => setError(String(e)));
  };
  return (
    <main>
      <p id="status">{isActive ? "connected" : "disconnected"}</p>
      <p id="identity">{identity?.toHexString() ?? "-"}</p>
      <p id="ready">{ready ? "ready" : "loading"}</p>
      <ul id="messages">
        {sorted.map((message) => <li key={String(message.id)}>{message.text}</li>)}
      </ul>
      <p id="users">{users.filter((user) => user.online).length} online</p>
      <form onSubmit={send}>
        <input id="draft" value={draft} onChange={(e) => setDraft(e.target.value)} />
        <button id="send" type="submit">Send</button>
      </form>
      <p id="error">{error}</p>
    </main>
  );
}

createRoot(document.getElementById("root")!).render(
  <SpacetimeDBProvider connectionBuilder={connectionBuilder}>
    <Chat />
  </SpacetimeDBProvider>,
);
