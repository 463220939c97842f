/**
 * Typed operating errors of the datastore. Each code maps 1:1 onto a `spacetime:sys` errno
 * (the worker builds the module-visible error from `code`); see module-abi.md §2.1.
 */
export type DatastoreErrorCode =
  | "NoSuchTable"
  | "NoSuchIndex"
  | "UniqueViolation"
  | "DecodeError"
  | "WrongIndexAlgo"
  | "IndexNotUnique"
  | "NoSuchRow"
  | "AutoIncOverflow"
  | "ScheduleAtDelayTooLong";

export class DatastoreError extends Error {
  override name = "DatastoreError";
  constructor(readonly code: DatastoreErrorCode, message: string) {
    super(message);
  }
}

export function decodeError(message: string): DatastoreError {
  return new DatastoreError("DecodeError", message);
}
