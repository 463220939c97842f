/**
 * Node.js entry of the feature scenario (bundled by support.ts, run by features_test.ts):
 * one JSON request per stdin line, `{id, op, args}`, run on a FeaturesDriver; one JSON
 * reply per stdout line, `{id, ok, result | error}` (the protocol of node_client.ts).
 */
import process from "node:process";
import { createInterface } from "node:readline";
import { FeaturesDriver } from "./features_driver.ts";

const driver = new FeaturesDriver();
const write = (reply: unknown) => process.stdout.write(JSON.stringify(reply) + "\n");
write({ id: 0, ok: true, result: { node: process.version } });
for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === "") continue;
  const { id, op, args } = JSON.parse(line);
  try {
    write({ id, ok: true, result: await driver.run(op, args) });
  } catch (error) {
    write({
      id,
      ok: false,
      error: error instanceof Error ? error.stack ?? error.message : String(error),
    });
  }
}
process.exit(0);
