import type { Hono } from "hono";

/** What the auth middleware learned about the caller. */
export type Principal =
  | { kind: "root" }
  | { kind: "ingest"; keyId: string; type: "public" | "secret"; serviceId: string; origins: readonly string[] }
  | { kind: "admin"; keyId: string; services: readonly string[] };

/** Hono's environment for this app: per-request variables set by middleware. */
export interface AppEnv {
  Variables: {
    requestId: string;
    principal: Principal;
    /** The ingest key a request presented in a header or the query (a body `key` must be the same). */
    ingestKey: string;
    /** Route pattern for logs and metrics (low cardinality). */
    route: string;
  };
}

export type App = Hono<AppEnv>;
