/** The query folder's door: SQL parsing, checking, planning and the subscription index. */
export { SqlError, type SqlErrorCode, subscriptionErrorText } from "./sql_error.ts";
export { isSelectStarFromStar, parseSelect, parseSubscriptionQuery } from "./parse.ts";
export type { SelectStatement } from "./parse.ts";
export { checkSelect } from "./check.ts";
export type { CheckedSelect, QueryCatalog, QueryContext } from "./check.ts";
export { planSelect } from "./plan.ts";
export type {
  Fragment,
  InstanceColumn,
  JoinCondition,
  JoinFragment,
  PlanInstance,
  PlanOptions,
  QueryPlan,
  SelectFragment,
} from "./plan.ts";
export {
  type CommittedState,
  compileSubscriptionQuery,
  type EvaluationLimits,
  executePlan,
  expandSelectStarFromStar,
  forEachJoinTuple,
  type OneOffResult,
  runOneOffQuery,
} from "./execute.ts";
export type { QueryDelta, TableDelta, TxDelta } from "./delta.ts";
export { type RegisteredQuery, SubscriptionIndex } from "./subscriptions.ts";
export {
  recognizeTopN,
  type TopNOrderItem,
  topNQuery,
  type TopNQueryParts,
  TopNWindow,
} from "./topn.ts";
export { TOPN_SUPPORTED_TEXT } from "./parse.ts";
export { formatType } from "./_scalar.ts";
export {
  applyRls,
  compileWithRls,
  evaluateSelectWithRls,
  NO_RLS_RULES,
  resolveRlsRules,
  RlsRuleError,
  type RlsRules,
  sqlSelectFragments,
} from "./rls.ts";
export { parseSqlStatement } from "./parse.ts";
export type { SqlStatement } from "./parse.ts";
export { checkSqlStatement, isDml } from "./sql_check.ts";
export type { SqlDmlPlan, SqlPlan, SqlSelectPlan } from "./sql_check.ts";
export {
  checkRowLimit,
  compileSql,
  evaluateSelect,
  executeDml,
  queryTimeBudgetError,
  type SqlDeadline,
  type SqlDmlCounts,
  type SqlSelectResult,
  type SqlState,
  type SqlWriteTx,
} from "./sql_eval.ts";
export {
  isSystemTableId,
  ST_VAR_NAME,
  ST_VAR_SCHEMA,
  ST_VAR_TABLE_ID,
  type SystemTableSource,
  type UserTableInfo,
  virtualSystemRows,
  virtualSystemSchema,
  virtualSystemSchemas,
  virtualSystemTableId,
} from "./system_tables.ts";
export { datastoreRowLimit, datastoreSqlState, mutTxWriter } from "./sql_state.ts";
export {
  estimatePlanRowsScanned,
  estimateSelectRowsScanned,
  rowLimitError,
} from "./row_estimate.ts";
