/**
 * storage/: the in-memory transactional datastore (tables, indexes, sequences, transactions).
 * Other folders import storage through this file only.
 */
export {
  Datastore,
  type DatastoreOptions,
  MutTx,
  NOT_UNIQUE,
  type RowIds,
  type StateCursor,
  type WriteResult,
} from "./datastore.ts";
export { DatastoreError, type DatastoreErrorCode } from "./datastore_error.ts";
export { decodeTxDelta, encodeTxDelta, type TxDelta } from "./tx_delta.ts";
export type {
  AlgebraicType,
  IndexAlgorithm,
  IndexSchema,
  SequenceSchema,
  TableSchema,
} from "./schema.ts";
export * from "./durability_mod.ts";
