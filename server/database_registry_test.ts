/**
 * The update gate work waits on while a database's module is replaced: it lets
 * waiters through when the update ends and gives up with a clear 503-style error
 * when the update takes longer than the caller may wait.
 */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
  rejects as assertRejects,
} from "node:assert/strict";
import { DatabaseUnavailableError } from "../worker/mod.ts";
import { UpdateGate } from "./database_registry.ts";
import { statusOf } from "./error_response.ts";

Deno.test("waiting on a gate with no update in progress resolves at once", async () => {
  const gate = new UpdateGate();
  assertEquals(gate.active, false);
  await gate.wait(0);
});

Deno.test("waiters are let through when the update ends", async () => {
  const gate = new UpdateGate();
  gate.begin();
  assertEquals(gate.active, true);
  let through = 0;
  const waiters = [gate.wait(60_000), gate.wait(60_000)].map((wait) => wait.then(() => through++));
  await Promise.resolve();
  assertEquals(through, 0);
  gate.end();
  assertEquals(gate.active, false);
  await Promise.all(waiters);
  assertEquals(through, 2);
});

Deno.test("a waiter gives up with a 503 'being updated' error when the update outlasts its wait", async () => {
  const gate = new UpdateGate();
  gate.begin();
  await assertRejects(gate.wait(5), (error: unknown) => {
    assert(error instanceof DatabaseUnavailableError);
    assertEquals(statusOf(error), 503);
    assertEquals(
      error.message,
      "Database is being updated, try again: the new module did not start within 5 ms",
    );
    return true;
  });
  // The update itself goes on; a later update is a fresh gate state.
  assertEquals(gate.active, true);
  gate.end();
  gate.begin();
  const waiting = gate.wait(60_000);
  gate.end();
  await waiting;
});
