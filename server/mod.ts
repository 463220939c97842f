/** The door of server/: start a server. */
export { type RunningServer, type ServerOptions, startServer, VERSION } from "./server.ts";
export { parseHttpAllow } from "./outbound_http.ts";
export type { ResponseBudgetOptions } from "./response_budget.ts";
