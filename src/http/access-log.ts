// Every request's id, HTTP metrics and access-log line, in one middleware (one layer fewer on
// every request than a separate request-id middleware).
//
// Log policy: accepted ingest requests (2xx on /v1/ingest/*) are logged at `debug`; everything
// else — every non-2xx, every error, and every other route — at `info`. Ingest is the
// high-volume path (one line per tracked event cost ~6% of the JS thread at saturation), and its
// successes are counted by http_requests_total and ingest_items_total anyway; LOG_LEVEL=debug
// brings the lines back.
import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import type { Logger } from "../logger.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { AppEnv } from "./app-env.ts";

// API.md: the client's X-Request-Id is echoed, whatever it holds: the HTTP parser has already
// refused what a header value may not carry (CR, LF, NUL), so the value can go back byte for byte
// (bytes past ASCII read as Latin-1 characters and are written back as the same bytes), and the
// access log writes it JSON-escaped. Its length is bounded by the header limit (64 KiB).
const INGEST_ROUTE = "/v1/ingest/";

/** Gives every request an id (the client's X-Request-Id when it sent one), echoes it, and logs and counts the request. */
export function accessLog(logger: Logger, metrics: Metrics): MiddlewareHandler<AppEnv> {
  return async function accessLogMiddleware(c, next) {
    const started = performance.now();
    const sent = c.req.header("x-request-id");
    const id = sent ? sent : crypto.randomUUID();
    c.set("requestId", id);
    c.header("X-Request-Id", id);
    // Answers are JSON about one tenant's data: never sniffed as something else, never kept by a
    // shared cache or the browser (the service caches the heavy ones itself, per credential scope).
    c.header("X-Content-Type-Options", "nosniff");
    c.header("Cache-Control", "no-store");
    await next();
    const seconds = (performance.now() - started) / 1000;
    const route = routePath(c, -1) || "unmatched";
    const status = c.res.status;
    const method = c.req.method;
    metrics.countRequest(method, route, status, seconds);
    const fields = { request_id: id, method, route, status, ms: Math.round(seconds * 10_000) / 10 };
    if (status >= 200 && status < 300 && route.startsWith(INGEST_ROUTE)) logger.debug("request", fields);
    else logger.info("request", fields);
  };
}
