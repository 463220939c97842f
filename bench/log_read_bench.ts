/**
 * Recovery's read of the commit log: open (find the end, decide a torn tail) then stream every
 * commit for replay, as the storage worker does. Before: every segment read and checksummed at
 * open, then read again for the replay. Now (`verifyEarlierSegments: false`): the last segment
 * at open, the others once, verified as the replay reaches them.
 *
 * Estimate first: 178 MB of log (1M keynote transfers) is a ~178 MB read from the page cache
 * (~50-100 ms) plus CRC32C in JS (~300-600 MB/s, so ~300-600 ms): reading twice costs one extra
 * read, checksumming stays once.
 *
 *   deno run -A bench/log_read_bench.ts [--records 1000000] [--record-bytes 178]
 */
import { cpuUsage } from "node:process";
import { parseArgs } from "node:util";
import { lengthPrefixed } from "../storage/commitlog/frame.ts";
import { readCommitLog } from "../storage/commitlog/reader.ts";
import { CommitLogWriter } from "../storage/commitlog/writer.ts";
import { denoFs, type FsLayer } from "../storage/fs_layer.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    records: { type: "string", default: "1000000" },
    "record-bytes": { type: "string", default: "178" },
  },
});
const RECORDS = Number(values.records);
const RECORD_BYTES = Number(values["record-bytes"]);
const PER_COMMIT = 200;

const dir = `${await Deno.makeTempDir({ prefix: "lightcone-log-read-" })}/log`;
try {
  const writer = CommitLogWriter.open(denoFs, dir);
  const record = new Uint8Array(RECORD_BYTES).fill(7);
  const commit = lengthPrefixed(Array.from({ length: PER_COMMIT }, () => record));
  for (let first = 0; first < RECORDS; first += PER_COMMIT) {
    writer.append(BigInt(first), PER_COMMIT, [commit]);
    if (first % 20_000 === 0) writer.sync();
  }
  writer.sync();
  writer.close();

  let bytesRead = 0;
  const fs: FsLayer = {
    ...denoFs,
    readFile: (path) => {
      const bytes = denoFs.readFile(path);
      bytesRead += bytes.length;
      return bytes;
    },
  };
  console.log(
    `Deno ${Deno.version.deno}; ${RECORDS.toLocaleString("en-US")} records of ${RECORD_BYTES} B`,
  );
  for (let round = 0; round < 3; round++) {
    for (const deferred of [false, true]) {
      bytesRead = 0;
      const wallStart = performance.now();
      const cpuStart = cpuUsage();
      const log = readCommitLog(fs, dir, { verifyEarlierSegments: !deferred });
      let records = 0;
      for (const view of log.commits()) records += view.recordCount;
      const cpu = cpuUsage(cpuStart);
      const wallMs = performance.now() - wallStart;
      if (records !== RECORDS) throw new Error(`read ${records} records`);
      console.log(
        `${
          deferred ? "once (now)      " : "twice (before)  "
        } segments ${log.segments.length}, read ${(bytesRead / 2 ** 20).toFixed(0)} MiB, CPU ${
          ((cpu.user + cpu.system) / 1000).toFixed(0)
        } ms, wall ${wallMs.toFixed(0)} ms`,
      );
    }
  }
} finally {
  await Deno.remove(dir.slice(0, -4), { recursive: true });
}
