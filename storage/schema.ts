import type { AlgebraicType, ProductType, Typespace } from "../protocol/mod.ts";

/** What the datastore needs to know about one table. Built by worker/ from the module def. */
export interface TableSchema {
  /** Stable id: never reused while the database lives, kept across restarts. */
  tableId: number;
  /** Canonical name (snake_case by default); used by SQL and clients. */
  name: string;
  /** The module's accessor/source name; `table_id_from_name` accepts both. */
  sourceName: string;
  /** Row type with all Refs resolved against `typespace` at the top level. */
  rowType: ProductType;
  /**
   * The columns' source (accessor) names, parallel to `rowType`; SQL resolves a column by them
   * first, then by canonical name. Absent: the canonical names only.
   */
  columnAccessors?: readonly string[];
  /** The module's typespace, to resolve Refs nested inside column types. */
  typespace: Typespace;
  primaryKey: number[];
  indexes: IndexSchema[];
  /** Column sets with a unique constraint (each pk/unique column gives one). */
  uniqueConstraints: number[][];
  sequences: SequenceSchema[];
  isPublic: boolean;
  isEvent: boolean;
}

export type IndexAlgorithm = "btree" | "hash" | "direct";

export interface IndexSchema {
  /** Stable id, unique across the whole database. */
  indexId: number;
  /** Canonical name, e.g. `person_age_idx_btree`. */
  name: string;
  /** Source name as the library asks for it in `index_id_from_name`. */
  sourceName: string;
  accessorName: string | undefined;
  algorithm: IndexAlgorithm;
  columns: number[];
  /** True when `columns` is a superset of some unique constraint's columns. */
  unique: boolean;
}

export interface SequenceSchema {
  column: number;
  start: bigint | undefined;
  min: bigint | undefined;
  max: bigint | undefined;
  increment: bigint;
}

export type { AlgebraicType };
