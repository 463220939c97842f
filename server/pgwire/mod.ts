/** The door of server/pgwire/: the PostgreSQL wire protocol listener. */
export { type PgServer, startPgServer } from "./pg_server.ts";
export type { PgBackend } from "./session.ts";
