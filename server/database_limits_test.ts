import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import { DATABASE_LIMITS_DEFAULT } from "../lib/limits.ts";
import { databaseLimits } from "./server.ts";

Deno.test("databaseLimits() fills absent limits with the defaults and refuses bad values", () => {
  assertEquals(databaseLimits(), { ...DATABASE_LIMITS_DEFAULT });
  assertEquals(databaseLimits({ commitLogBytesPerS: 5, txRecordBytesMax: undefined }), {
    ...DATABASE_LIMITS_DEFAULT,
    commitLogBytesPerS: 5,
  });
  throws(() => databaseLimits({ txRecordBytesMax: 0 }), /txRecordBytesMax "0" must be a positive/);
  throws(() => databaseLimits({ moduleLogBytesPerS: 1.5 }), /moduleLogBytesPerS "1.5"/);
  assertEquals(databaseLimits({ procedureThreads: 16 }).procedureThreads, 16);
  throws(() => databaseLimits({ procedureThreads: 17 }), /procedureThreads "17" is over the most/);
  throws(() => databaseLimits({ procedureQueue: 0 }), /procedureQueue "0" must be a positive/);
  assertEquals(databaseLimits({ procedureIdleS: 2 }).procedureIdleS, 2);
  throws(() => databaseLimits({ procedureIdleS: 0 }), /procedureIdleS "0" must be a positive/);
});
