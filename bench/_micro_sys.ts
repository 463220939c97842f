import { createSyscalls } from "../worker/sys_abi.ts";
import { Datastore, type MutTx } from "../storage/mod.ts";
import { moduleInfoFromDescribe } from "../worker/module_info.ts";
import { DatabaseEngine, NO_BUDGET } from "../worker/engine.ts";
import { systemClock } from "../lib/clock.ts";
import { fixtureBundle } from "../tests/support/server.ts";
const engine = new DatabaseEngine({
  clock: systemClock,
  budget: NO_BUDGET,
  reducerBudgetMs: 10_000,
  databaseIdentity: 1n,
  loadTimeoutMs: 30_000,
});
await engine.load(await fixtureBundle("bank"));
const ds = new Datastore(engine.module.tables);
let tx: MutTx | undefined;
const sys = createSyscalls({
  tx: () => tx,
  tableIdFromName: (n) => ds.tableIdFromName(n),
  indexIdFromName: (n) => ds.indexIdFromName(n),
  errorConstructor: () => undefined,
  databaseIdentity: () => 1n,
  jwtPayload: () => new Uint8Array(),
  consoleLog: () => {},
  poison: () => {},
  isPoisoned: () => false,
  scheduleImmediate: () => {},
  nowMicros: () => 0n,
  startAnonymousTx: () => false,
  commitAnonymousTx: () => false,
  abortAnonymousTx: () => false,
});
const v = sys.v20 as any;
const buf = new ArrayBuffer(65536);
const dv = new DataView(buf);
tx = ds.beginMutTx();
const table = ds.tableIdFromName("accounts")!;
const index = ds.indexIdFromName("accounts_id_idx_btree")!;
for (let id = 0; id < 100000; id++) {
  dv.setUint32(0, id, true);
  dv.setBigInt64(4, 1000000n, true);
  v.datastore_insert_bsatn(table, buf, 12);
}
tx.commit();
function cpuNs(): number {
  return Number(Deno.readTextFileSync("/proc/thread-self/schedstat").split(" ")[0]);
}
const out = (s: string) => Deno.stderr.writeSync(new TextEncoder().encode(s + "\n"));
const N = 300000;
for (let round = 0; round < 4; round++) {
  let c0 = cpuNs();
  tx = ds.beginMutTx();
  for (let i = 0; i < N; i++) {
    dv.setUint32(0, (i * 7919) % 100000, true);
    const it = v.datastore_index_scan_point_bsatn(index, buf, 4);
    v.row_iter_bsatn_advance(it, buf);
  }
  tx.commit();
  tx = undefined;
  out(`find: ${((cpuNs() - c0) / N).toFixed(0)} ns`);
  c0 = cpuNs();
  tx = ds.beginMutTx();
  for (let i = 0; i < N; i++) {
    dv.setUint32(0, (i * 7919) % 100000, true);
    const it = v.datastore_index_scan_point_bsatn(index, buf, 4);
  }
  tx.commit();
  tx = undefined;
  sys.endCall();
  out(`scan only: ${((cpuNs() - c0) / N).toFixed(0)} ns`);
  c0 = cpuNs();
  tx = ds.beginMutTx();
  const u8 = new Uint8Array(buf, 0, 4);
  for (let i = 0; i < N; i++) {
    dv.setUint32(0, (i * 7919) % 100000, true);
    tx.indexScanPoint(index, u8);
  }
  tx.commit();
  tx = undefined;
  out(`tx.indexScanPoint: ${((cpuNs() - c0) / N).toFixed(0)} ns`);
  c0 = cpuNs();
  const m = new Map<number, number>();
  for (let i = 0; i < 100000; i++) m.set(i, i);
  let sum = 0;
  for (let i = 0; i < N; i++) sum += m.get((i * 7919) % 100000)!;
  out(`map get: ${((cpuNs() - c0) / N).toFixed(0)} ns`);
  c0 = cpuNs();
  for (let j = 0; j < N / 1000; j++) {
    tx = ds.beginMutTx();
    for (let i = 0; i < 1000; i++) {
      dv.setUint32(0, (i * 7919) % 100000, true);
      dv.setBigInt64(4, BigInt(i), true);
      v.datastore_update_bsatn(table, index, buf, 12);
    }
    tx.commit();
    tx = undefined;
  }
  out(`update: ${((cpuNs() - c0) / N).toFixed(0)} ns`);
}
Deno.exit(0);
