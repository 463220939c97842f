/** The door of worker/: what the server may use (the host handle and message shapes). */
export {
  DatabaseHost,
  DatabaseUnavailableError,
  ModuleInitError,
  ReplayFailedError,
} from "./host.ts";
export { logIsolationCapabilities, setWarmSpare } from "./isolation.ts";
export type { DatabaseHostOptions } from "./host.ts";
export type {
  BatchItem,
  CallResult,
  HibernatingReply,
  HttpHandlerResult,
  LogLine,
  OneOffQueryResult,
  OutboundHttpRequest,
  OutboundHttpResponse,
  PreparedModule,
  ProcedureResult,
  QueryDelta,
  QueryRows,
  ResumedSchedule,
  SubscribeResult,
  TxUpdate,
  UnsubscribeResult,
  WorkerResult,
} from "./messages.ts";
export { GENERIC_FAILURE_MESSAGE, SCHEMA_MISMATCH_PREFIX } from "./engine.ts";
export { STALL_KINDS } from "./messages.ts";
export {
  formatMigrationErrors,
  type MigrationPlan,
  planBreaksClients,
  planMigration,
  tablesFingerprint,
} from "./auto_migrate.ts";
export { formatMigrationPlan } from "./auto_migrate_format.ts";
export { moduleInfoFromDescribe } from "./module_info.ts";
export type { ModuleInfo, ProcedureInfo, ReducerInfo } from "./module_info.ts";
export {
  CorruptLogError,
  DurabilityActor,
  type SegmentVerdict,
  SegmentVerifier,
} from "../storage/mod.ts";
/** WebAssembly modules travel as bundles too (wasm/bundle.ts). */
export { isWasmBinary, isWasmBundle, wasmBundle } from "../wasm/mod.ts";
