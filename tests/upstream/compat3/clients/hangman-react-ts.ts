// Driver for templates/hangman-react-ts: init starts round 1 and schedules its close, the
// per-sender my_progress view (an option of a row type declared with t.row) over private
// tables, set_name / guess_letter and their errors, and the scheduler's private table.
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

const ann = await open();
const ben = await open();
const queries = [tables.player, tables.currentRound, tables.roundResult, tables.myProgress];
await subscribe(ann.conn, queries);
await subscribe(ben.conn, queries);
const progress = (c: Conn) => [...c.db.myProgress.iter()][0];

await check("init started round 1 in the Active phase with a hidden answer", () => {
  const round = ann.conn.db.currentRound.id.find(0);
  expect(round !== undefined, "no current_round row with id 0");
  expect(round!.roundNumber === 1n, `round_number ${round!.roundNumber}`);
  expect(round!.phase.tag === "Active", `phase ${round!.phase.tag}`);
  expect(round!.answer === undefined, "the answer is public during the round");
  expect(round!.wordLength >= 5, `word_length ${round!.wordLength}`);
});

await check("my_progress is empty before the caller has a name; guessing is refused", async () => {
  expect(ann.conn.db.myProgress.count() === 0n, "a nameless player has progress");
  const text = await rejection(ann.conn.reducers.guessLetter({ letter: "e" }));
  expect(text.includes("Choose a name before guessing"), `error was: ${text}`);
});

await check("set_name validates, inserts then updates the player row", async () => {
  const empty = await rejection(ann.conn.reducers.setName({ name: "  " }));
  expect(empty.includes("Names must be between 1 and 20 characters"), `error was: ${empty}`);
  await ann.conn.reducers.setName({ name: "Ann" });
  await ben.conn.reducers.setName({ name: "Ben" });
  await waitFor("two players at ann", () => ann.conn.db.player.count() === 2n);
  let updated = false;
  ann.conn.db.player.onUpdate((_ctx, _old, row) => updated ||= row.name === "Annie");
  await ann.conn.reducers.setName({ name: " Annie " });
  await waitFor("onUpdate of ann's renamed row", () => updated);
});

await check("my_progress appears with the masked word once the caller has a name", async () => {
  const round = ann.conn.db.currentRound.id.find(0)!;
  const board = await waitFor("ann's board", () => progress(ann.conn));
  expect(board.roundNumber === round.roundNumber, "board of another round");
  expect(board.maskedWord === Array(round.wordLength).fill("_").join(" "), board.maskedWord);
  expect(board.guessedLetters === "" && board.incorrectGuesses === 0, "a fresh board");
});

await check("guess_letter updates only the guesser's board and refuses bad guesses", async () => {
  await ann.conn.reducers.guessLetter({ letter: "e" });
  const board = await waitFor("ann's guess", () => {
    const b = progress(ann.conn);
    return b && b.guessedLetters === "E" ? b : undefined;
  });
  const round = ann.conn.db.currentRound.id.find(0)!;
  expect(board.maskedWord.split(" ").length === round.wordLength, board.maskedWord);
  expect(progress(ben.conn)?.guessedLetters === "", "ben's board changed with ann's guess");
  const again = await rejection(ann.conn.reducers.guessLetter({ letter: "E" }));
  expect(again.includes("You already guessed that letter"), `error was: ${again}`);
  const digit = await rejection(ann.conn.reducers.guessLetter({ letter: "7" }));
  expect(digit.includes("Guess one letter from A to Z"), `error was: ${digit}`);
});

await check("a client cannot call the scheduled reducer or read the private tables", async () => {
  const text = await new Promise<string>((resolve) => {
    ann.conn.subscriptionBuilder()
      .onApplied(() => resolve("applied"))
      .onError((ctx: { event?: Error }) => resolve(ctx.event?.message ?? "error"))
      .subscribe("SELECT * FROM round_secret");
  });
  expect(text !== "applied", "round_secret is readable by a client");
});

// The round's scheduled close (60 s after init) and the next round's start (10 s later): only
// with LC_LONG=1 (run.ts --long), as it takes over a minute.
// deno-lint-ignore no-explicit-any
if ((globalThis as any).process.env.LC_LONG === "1") {
  await check(
    "the scheduled close publishes results and the answer; the next round starts",
    async () => {
      const results = await waitFor(
        "the Results phase",
        () => {
          const round = ann.conn.db.currentRound.id.find(0);
          return round?.phase.tag === "Results" ? round : undefined;
        },
        90_000,
      );
      expect(results.roundNumber === 1n && results.answer !== undefined, "round 1's answer");
      const mine = [...ann.conn.db.roundResult.iter()].find((r) =>
        r.identity.toHexString() === ann.identity.toHexString()
      );
      expect(mine?.name === "Annie" && mine.rank >= 1, `ann's result: ${mine?.name} ${mine?.rank}`);
      expect(ann.conn.db.myProgress.count() === 0n, "a board outside the Active phase");
      await waitFor(
        "round 2",
        () => {
          const round = ann.conn.db.currentRound.id.find(0);
          return round?.roundNumber === 2n && round.phase.tag === "Active";
        },
        30_000,
      );
      expect(ann.conn.db.roundResult.count() === 0n, "round 1's results were not cleared");
    },
  );
}

ann.conn.disconnect();
ben.conn.disconnect();
finish();
