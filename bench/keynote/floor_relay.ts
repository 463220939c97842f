/**
 * The child process of bench/keynote/floor_server.ts (`relay`, `durable`): connects to the Unix
 * socket it is given and writes every whole frame it reads straight back, the frames of one read
 * in one write (a database process that runs nothing).
 */
import { concatBytes } from "../../lib/bytes.ts";
import { floorFrame, FloorFrameReader } from "./floor_frames.ts";

const conn = await Deno.connect({ transport: "unix", path: Deno.args[0] });
const buffer = new Uint8Array(1 << 16);
let out: Uint8Array[] = [];
const reader = new FloorFrameReader((payload) => out.push(payload));
for (;;) {
  const count = await conn.read(buffer);
  if (count === null) break;
  reader.push(buffer.subarray(0, count));
  if (out.length === 0) continue;
  const bytes = concatBytes(out.map(floorFrame));
  out = [];
  for (let written = 0; written < bytes.length;) {
    written += await conn.write(bytes.subarray(written));
  }
}
