/** The query folder's door: SQL parsing, checking, planning and the subscription index. */
export { SqlError, type SqlErrorCode, subscriptionErrorText } from "./sql_error.ts";
export { isSelectStarFromStar, parseSelect, parseSubscriptionQuery } from "./parse.ts";
export type { SelectStatement } from "./parse.ts";
export { checkSelect } from "./check.ts";
export type { CheckedSelect, QueryCatalog, QueryContext } from "./check.ts";
export { planSelect } from "./plan.ts";
export type { QueryPlan } from "./plan.ts";
export {
  type CommittedState,
  compileSubscriptionQuery,
  executePlan,
  expandSelectStarFromStar,
  type OneOffResult,
  runOneOffQuery,
} from "./execute.ts";
export { planDelta, type QueryDelta, type TableDelta, type TxDelta } from "./delta.ts";
export { type RegisteredQuery, SubscriptionIndex } from "./subscriptions.ts";
export { formatType } from "./_scalar.ts";
export {
  applyRls,
  compileWithRls,
  NO_RLS_RULES,
  resolveRlsRules,
  RlsRuleError,
  type RlsRules,
} from "./rls.ts";
