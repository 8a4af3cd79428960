// Builds the Hono app from its dependencies. Web-standard APIs (Request, Response, fetch) plus
// node:crypto's hashes: Bun-specific code stays in main.ts and the disk spool, so the same app can
// be mounted on Node too.
import { type Context, Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { ApiError, isBackendUnavailable } from "./errors.ts";
import type { Logger } from "./logger.ts";
import type { Metrics } from "./ops/metrics.ts";
import type { App, AppEnv } from "./http/app-env.ts";
import { accessLog } from "./http/access-log.ts";
import { hasRefusedHost, withUsableUrl } from "./http/request-url.ts";
import { registerOpsRoutes, type Readiness } from "./ops/ops-routes.ts";
import { registerOpenApiRoute } from "./http/openapi.ts";

/** Everything the routes need, built once by the composition root (compose.ts, or a test). */
export interface AppDeps {
  logger: Logger;
  metrics: Metrics;
  readiness: Readiness;
  /** Route modules register themselves here; each gets the app and its own dependencies. */
  routes?: ReadonlyArray<(app: App) => void>;
}

/**
 * Hono answers HEAD with the GET answer's headers and no body, and Bun then sends
 * `Content-Length: 0`; RFC 9110 (8.6) allows a Content-Length on a HEAD answer only when it is the
 * GET body's. The GET body is read here, once, for its length.
 */
async function keepHeadLength(c: Context<AppEnv>): Promise<void> {
  if (!c.res.body) return;
  const body = await c.res.arrayBuffer();
  const res = new Response(body, c.res);
  res.headers.set("Content-Length", String(body.byteLength));
  c.res = res;
}

/** The HTTP application: middleware, every route, and the one error handler. */
export function buildApp(deps: AppDeps): App {
  const app = new Hono<AppEnv>();
  app.use("*", accessLog(deps.logger, deps.metrics)); // request id, metrics, access log
  app.use("*", (c, next) => {
    if (hasRefusedHost(c.req.raw)) {
      throw new ApiError("invalid_request", "The Host header is not a valid host[:port]; send the name the service is reached at (e.g. Host: analytics.example.com), or no Host header");
    }
    return c.req.method === "HEAD" ? next().then(() => keepHeadLength(c)) : next();
  });
  registerOpsRoutes(app, deps);
  for (const register of deps.routes ?? []) register(app);
  registerOpenApiRoute(app); // last: it documents every route registered above

  const methodsOf = registeredMethods(app);
  // Answered, not thrown: an error thrown from the not-found handler skips the rest of the
  // middleware, so 404s and 405s were neither counted in http_requests_total nor logged.
  app.notFound((c) => {
    const path = c.req.path; // what the router matched against
    const allow = methodsOf(path);
    // A HEAD answer is the GET answer's headers (keepHeadLength) and its body is never sent: the
    // body measured for its Content-Length is the one a GET gets, which names GET.
    const method = c.req.method === "HEAD" ? "GET" : c.req.method;
    if (allow.length > 0) {
      return errorResponse(new ApiError("method_not_allowed", `${method} is not allowed on ${path}; use ${allow.join(" or ")}`, { allow }), c);
    }
    return errorResponse(new ApiError("not_found", `No route for ${method} ${path}`), c);
  });
  app.onError((err, c) => errorResponse(err, c));
  // A request without a usable Host reaches the app with only a path as its URL (request-url.ts).
  const dispatch = app.fetch;
  app.fetch = (request, ...rest) => dispatch(withUsableUrl(request), ...rest);
  /** The contract's error body for `err`, counted and logged by kind. */
  function errorResponse(err: unknown, c: Context<AppEnv>): Response {
    const requestId = c.get("requestId") ?? crypto.randomUUID();
    const apiError = toApiError(err);
    if (apiError.status === 503) {
      // Expected while ClickHouse or Valkey is away, or the spool is full: no stack, not an error.
      deps.logger.warn("request refused: unavailable", { request_id: requestId, reason: err instanceof ApiError ? err.message : String((err as Error)?.message ?? err) });
      deps.metrics.clientErrors.inc({ code: apiError.code });
    } else if (apiError.status >= 500) {
      deps.logger.error("request failed", { request_id: requestId, error: err instanceof Error ? err.stack ?? err.message : String(err) });
    } else {
      deps.metrics.clientErrors.inc({ code: apiError.code });
    }
    const headers: Record<string, string> = { "X-Request-Id": requestId };
    if (apiError.extra.retryAfterSeconds !== undefined) headers["Retry-After"] = String(apiError.extra.retryAfterSeconds);
    if (apiError.extra.allow) headers.Allow = apiError.extra.allow.join(", ");
    return c.json(
      {
        error: { code: apiError.code, message: apiError.message, ...(apiError.extra.issues ? { issues: apiError.extra.issues } : {}) },
        request_id: requestId,
      },
      apiError.status as 400,
      headers,
    );
  }
  return app;
}

/**
 * The methods routes answer on a path, for a 405's Allow header; none (a 404) when no route names
 * the path itself. Middleware does not count: registered for every method, or for some methods on
 * a wildcard path (the ingest routes' CORS and key check on /v1/ingest/*, which adds OPTIONS to
 * the Allow of the routes it guards, but makes no path under it a route). HEAD goes with GET: Hono
 * answers it from the GET route. Built on first use, when every route is registered; asked only
 * on the not-found path.
 */
function registeredMethods(app: App): (path: string) => string[] {
  let table: Array<{ method: string; pattern: RegExp; wildcard: boolean }> | undefined;
  return (path) => {
    table ??= app.routes.filter((r) => r.method !== "ALL").map((r) => ({ method: r.method, pattern: routePattern(r.path), wildcard: r.path.includes("*") }));
    const matching = table.filter((t) => t.pattern.test(path));
    if (!matching.some((t) => !t.wildcard)) return [];
    const methods = new Set(matching.map((t) => t.method));
    if (methods.has("GET")) methods.add("HEAD");
    return [...methods];
  };
}

/** A Hono route path as a regex: `:name` (with an optional `{regex}`) is one segment, `*` anything. */
function routePattern(path: string): RegExp {
  const source = path
    .split(/(:[A-Za-z0-9_]+(?:\{[^}]*\})?|\*)/)
    .map((part) => (part.startsWith(":") ? "[^/]+" : part === "*" ? ".*" : part.replace(/[.+?^${}()|[\]\\]/g, "\\$&")))
    .join("");
  return new RegExp(`^${source}$`);
}

function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  // A zone name Intl knows and ClickHouse does not (US/Pacific-New, a deprecated link): the
  // request's fault, said as for any other bad value.
  const zone = /Cannot load time zone ([^\s'"]+)/.exec(String((err as Error)?.message ?? ""))?.[1];
  if (zone !== undefined) {
    const message = `${zone} is not a time zone ClickHouse knows; use its canonical IANA name`;
    return new ApiError("invalid_query", `tz: ${message}`, { issues: [{ path: "tz", message }] });
  }
  if (isBackendUnavailable(err)) {
    return new ApiError("unavailable", "ClickHouse or Valkey cannot serve this right now (down, overloaded, or out of disk); retry later", { retryAfterSeconds: 5 });
  }
  if (err instanceof HTTPException) {
    const status = err.status;
    if (status === 413) return new ApiError("payload_too_large", err.message || "Request body too large");
    if (status === 404) return new ApiError("not_found", err.message || "Not found");
    if (status === 401) return new ApiError("unauthorized", err.message || "Unauthorized");
    if (status < 500) return new ApiError("invalid_body", err.message || "Bad request");
  }
  return new ApiError("internal", "Internal error; the request id identifies it in the logs");
}
