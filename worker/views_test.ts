import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import {
  BinaryWriter,
  encodeValueToBytes,
  type ProductType,
  type Value,
  type ViewDef,
} from "../protocol/mod.ts";
import { Datastore, type MutTx, type TableSchema } from "../storage/mod.ts";
import type { ViewReadRecorder } from "./sys_abi.ts";
import { isViewTableId, ViewFailureError, ViewManager } from "./views.ts";

const ROW: ProductType = {
  elements: [
    { name: "id", algebraicType: { tag: "U32" } },
    { name: "group", algebraicType: { tag: "U32" } },
  ],
};
const ITEM: TableSchema = {
  tableId: 4096,
  name: "item",
  sourceName: "item",
  rowType: ROW,
  typespace: [],
  primaryKey: [0],
  indexes: [
    {
      indexId: 1,
      name: "item_id_idx_btree",
      sourceName: "item_id_idx_btree",
      accessorName: "id",
      algorithm: "btree",
      columns: [0],
      unique: true,
    },
    {
      indexId: 2,
      name: "item_group_idx_btree",
      sourceName: "item_group_idx_btree",
      accessorName: "group",
      algorithm: "btree",
      columns: [1],
      unique: false,
    },
  ],
  uniqueConstraints: [[0]],
  sequences: [],
  isPublic: true,
  isEvent: false,
};

function row(id: number, group: number): Uint8Array {
  return encodeValueToBytes({ tag: "Product", value: ROW }, [id, group] as Value);
}

function u32(value: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value, true);
  return bytes;
}

let nextViewId = 0;

/** Ids are distinct, as the module's are within each kind. */
function viewDef(name: string, options: { anonymous?: boolean; primaryKey?: number } = {}) {
  return {
    id: nextViewId++,
    rawIndex: 0,
    name,
    sourceName: name,
    localName: name,
    namespace: "",
    isPublic: true,
    isAnonymous: options.anonymous ?? false,
    params: { elements: [] },
    returnType: { tag: "Array", value: { tag: "Ref", value: 0 } },
    returnKind: "array",
    productTypeRef: 0,
    rowType: ROW,
    columns: [
      { colId: 0, name: "id", sourceName: "id", type: { tag: "U32" }, defaultValue: undefined },
      {
        colId: 1,
        name: "group",
        sourceName: "group",
        type: { tag: "U32" },
        defaultValue: undefined,
      },
    ],
    primaryKey: options.primaryKey,
    typespace: [],
  } as ViewDef;
}

function rowData(rows: Uint8Array[]): Uint8Array {
  const w = new BinaryWriter(64);
  w.writeU8(0);
  w.writeU32(rows.length);
  const head = w.finish();
  const out = new Uint8Array(head.length + rows.reduce((n, r) => n + r.length, 0));
  out.set(head, 0);
  let at = head.length;
  for (const r of rows) {
    out.set(r, at);
    at += r.length;
  }
  return out;
}

function sqlData(sql: string): Uint8Array {
  const w = new BinaryWriter(64);
  w.writeU8(1);
  w.writeString(sql);
  return w.finish();
}

type Body = (tx: MutTx, reads: ViewReadRecorder, sender: bigint | undefined) => Uint8Array;

function setup(views: ViewDef[], bodies: Record<string, Body>) {
  const datastore = new Datastore([ITEM]);
  const seed = datastore.beginMutTx();
  for (const [id, group] of [[1, 10], [2, 10], [3, 20]]) seed.insert(ITEM.tableId, row(id, group));
  seed.commit();
  const runs: string[] = [];
  const manager = new ViewManager(views, {
    callHook: (view, sender, reads, tx) => {
      runs.push(view.name);
      return bodies[view.name](tx, reads, sender);
    },
    tables: () => [ITEM],
    tableIdFromName: (name) => datastore.tableIdFromName(name),
  });
  const materialize = (view: ViewDef, sender = 1n) => {
    const tx = datastore.beginMutTx();
    try {
      return manager.materialize(view, sender, tx);
    } finally {
      tx.rollback();
    }
  };
  /** Runs `write` in a transaction, refreshes the views and commits; the view changes. */
  const write = (body: (tx: MutTx) => void) => {
    const tx = datastore.beginMutTx();
    body(tx);
    const pending = manager.refresh(tx);
    tx.commit();
    return pending === undefined ? [] : manager.apply(pending);
  };
  return { datastore, manager, runs, materialize, write };
}

/** A view over group 10 through the group index (a point read). */
const byGroup: Body = (tx, reads) => {
  reads.point(2, u32(10));
  return rowData(tx.indexScanPoint(2, u32(10)));
};

Deno.test("a view re-runs only when a changed row matches its index point", () => {
  const view = viewDef("group10");
  const { manager, runs, materialize, write } = setup([view], { group10: byGroup });
  const schema = materialize(view);
  assert(isViewTableId(schema.tableId));
  assertEquals(manager.rows(schema.tableId).length, 2);
  assertEquals(runs.length, 1);
  // A row of group 20 changes: not re-run.
  assertEquals(write((tx) => tx.insert(ITEM.tableId, row(4, 20))), []);
  assertEquals(runs.length, 1);
  // A row of group 10 is inserted: re-run, one insert in the view's table.
  const changes = write((tx) => tx.insert(ITEM.tableId, row(5, 10)));
  assertEquals(runs.length, 2);
  assertEquals(changes, [{ tableId: schema.tableId, inserts: [row(5, 10)], deletes: [] }]);
  // A row moves out of group 10 (its old key matches): re-run, one delete.
  const moved = write((tx) => tx.update(ITEM.tableId, 1, row(5, 20)));
  assertEquals(moved, [{ tableId: schema.tableId, inserts: [], deletes: [row(5, 10)] }]);
  assertEquals(runs.length, 3);
});

Deno.test("a re-run that reads other points moves the instance's read set", () => {
  // The view follows a pointer: item 1's group names the group whose items it returns.
  const view = viewDef("follow");
  const { runs, materialize, write } = setup([view], {
    follow: (tx, reads) => {
      reads.point(1, u32(1));
      const pointer = tx.indexScanPoint(1, u32(1))[0];
      const group = new DataView(pointer.buffer, pointer.byteOffset).getUint32(4, true);
      reads.point(2, u32(group));
      return rowData(tx.indexScanPoint(2, u32(group)).filter((r) => r[0] !== 1));
    },
  });
  materialize(view); // reads group 10: item 2
  assertEquals(runs.length, 1);
  // Item 1 now points at group 20: re-run, item 2 out, item 3 in.
  const moved = write((tx) => tx.update(ITEM.tableId, 1, row(1, 20)));
  assertEquals(runs.length, 2);
  assertEquals(moved[0].inserts, [row(3, 20)]);
  assertEquals(moved[0].deletes, [row(2, 10)]);
  // Group 10 is no longer read; group 20 is.
  assertEquals(write((tx) => tx.insert(ITEM.tableId, row(6, 10))), []);
  assertEquals(runs.length, 2);
  const added = write((tx) => tx.insert(ITEM.tableId, row(7, 20)));
  assertEquals(runs.length, 3);
  assertEquals(added[0].inserts, [row(7, 20)]);
  // The same points again (a row joins group 20): still indexed after that re-run.
  write((tx) => tx.insert(ITEM.tableId, row(9, 20)));
  assertEquals(runs.length, 4);
  write((tx) => tx.insert(ITEM.tableId, row(8, 20)));
  assertEquals(runs.length, 5);
});

Deno.test("a whole-table read re-runs on any change; an unchanged result sends nothing", () => {
  const view = viewDef("count", { anonymous: true });
  const countRow = (tx: MutTx) => row(tx.count(ITEM.tableId), 0);
  const { runs, materialize, write } = setup([view], {
    count: (tx, reads) => {
      reads.table(ITEM.tableId);
      return rowData([countRow(tx)]);
    },
  });
  materialize(view);
  assertEquals(write((tx) => tx.update(ITEM.tableId, 1, row(1, 99))), []);
  assertEquals(runs.length, 2);
  const changes = write((tx) => tx.insert(ITEM.tableId, row(9, 9)));
  assertEquals(changes[0].deletes, [row(3, 0)]);
  assertEquals(changes[0].inserts, [row(4, 0)]);
});

Deno.test("per-sender instances are separate; anonymous views are shared", () => {
  const mine = viewDef("mine");
  const shared = viewDef("shared", { anonymous: true });
  const senders: (bigint | undefined)[] = [];
  const body: Body = (tx, reads, sender) => {
    senders.push(sender);
    return byGroup(tx, reads, sender);
  };
  const { materialize } = setup([mine, shared], { mine: body, shared: body });
  const a = materialize(mine, 1n);
  const b = materialize(mine, 2n);
  assert(a.tableId !== b.tableId);
  assertEquals(materialize(mine, 1n).tableId, a.tableId);
  assertEquals(materialize(shared, 1n).tableId, materialize(shared, 2n).tableId);
  assertEquals(senders, [1n, 2n, undefined]);
});

Deno.test("identical rows collapse; two rows with one primary key fail the view", () => {
  const dup = viewDef("dup");
  const pk = viewDef("pk", { primaryKey: 1 });
  const { manager, materialize } = setup([dup, pk], {
    dup: () => rowData([row(1, 1), row(1, 1), row(2, 1)]),
    pk: () => rowData([row(1, 7), row(2, 7)]),
  });
  assertEquals(manager.rows(materialize(dup).tableId).length, 2);
  throws(() => materialize(pk), (error: Error) =>
    error instanceof ViewFailureError &&
    /Error materializing view `pk`: two rows have the same primary key/.test(error.message));
});

Deno.test("query-builder views: run with owner rights, whole-table reads, SpacetimeDB's errors", () => {
  const query = viewDef("query", { anonymous: true });
  const other = viewDef("other", { anonymous: true });
  const shape = {
    ...viewDef("shape", { anonymous: true }),
    rowType: { elements: [ROW.elements[0]] },
  };
  const empty = viewDef("empty", { anonymous: true });
  const { manager, runs, materialize, write } = setup([query, other, shape, empty], {
    query: () => sqlData('SELECT * FROM "item" WHERE "item"."group" = 20'),
    other: () => sqlData("SELECT * FROM query"),
    shape: () => sqlData("SELECT * FROM item"),
    empty: () => sqlData(""),
  });
  assertEquals(manager.rows(materialize(query).tableId), [row(3, 20)]);
  write((tx) => tx.insert(ITEM.tableId, row(8, 30)));
  assertEquals(runs.filter((name) => name === "query").length, 2);
  assertEquals(manager.rows(materialize(empty).tableId), []);
  throws(() => materialize(other), /view definition cannot read from other views/);
  throws(
    () => materialize(shape),
    (error: Error) =>
      error.message ===
        "Error materializing view `shape`: query returns `(id: U32, group: U32)` but view " +
          "expects `(id: U32)`",
  );
});

function bounds(from: number, to: number): Uint8Array {
  const out = new Uint8Array(10);
  out[0] = 0; // included
  out.set(u32(from), 1);
  out[5] = 0;
  out.set(u32(to), 6);
  return out;
}

Deno.test("a range scan with equal included bounds is an index point; a real range a table read", () => {
  const point = viewDef("rangePoint");
  const range = viewDef("realRange");
  const { runs, materialize, write } = setup([point, range], {
    rangePoint: (tx, reads) => {
      reads.range(2, bounds(10, 10), 0, 0, 5, 5);
      return rowData(tx.indexScanPoint(2, u32(10)));
    },
    realRange: (tx, reads) => {
      reads.range(2, bounds(10, 20), 0, 0, 5, 5);
      return rowData(tx.indexScanPoint(2, u32(10)));
    },
  });
  materialize(point);
  materialize(range);
  write((tx) => tx.insert(ITEM.tableId, row(7, 30)));
  assertEquals(runs, ["rangePoint", "realRange", "realRange"]);
  write((tx) => tx.insert(ITEM.tableId, row(8, 10)));
  assertEquals(runs.slice(3).sort(), ["rangePoint", "realRange"]);
});
