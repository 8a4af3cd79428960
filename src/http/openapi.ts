/**
 * GET /v1/openapi.json: an OpenAPI 3.1 document generated from the routes themselves
 * (hono-openapi, MIT; valibot schemas converted by @valibot/to-json-schema, MIT).
 *
 * How a route describes itself (ingest, keys and query routes alike):
 *
 *   app.post("/v1/ingest/event",
 *     describe({ summary: "Track an event", tags: ["ingest"], responses: { 202: jsonResponse(AcceptedSchema, "Accepted") } }),
 *     ...auth,
 *     bodyValidator,            // hono-openapi's validator("json", schema, hook) documents the body
 *     handler);
 *
 * - `describe(spec)`: hono-openapi's describeRoute with the contract's error responses added
 *   (400/401/403/404/405/429/500/503, each with the codes of its status, src/errors.ts), so every route
 *   documents the same error shape.
 * - `jsonResponse(schema, description)`: a JSON response from a valibot schema.
 * - Query strings and path parameters are documented by the validators in src/http/validate.ts
 *   (`queryValidator`, `paramValidator`); bodies by hono-openapi's `validator("json", ...)`.
 * - `registerOpenApiRoute(app)` last, after every route is registered.
 */
import type { Hono } from "hono";
import { describeRoute, generateSpecs, resolver } from "hono-openapi";
import * as v from "valibot";
import { ERROR_STATUS, type ErrorCode } from "../errors.ts";

/** The contract's error body, its `code` one of `codes` (all of ERROR_STATUS when not given). */
function errorBody(codes: readonly ErrorCode[] = Object.keys(ERROR_STATUS) as ErrorCode[]) {
  return v.object({
    error: v.object({
      code: v.picklist(codes),
      message: v.string(),
      issues: v.optional(v.array(v.object({ path: v.string(), message: v.string() }))),
    }),
    request_id: v.string(),
  });
}

/** The OpenAPI description of one HTTP status's error answer: the codes that status carries (src/errors.ts). */
export function errorResponseDoc(status: number, description: string, headers: Record<string, HeaderSpec> = {}) {
  const codes = (Object.keys(ERROR_STATUS) as ErrorCode[]).filter((c) => ERROR_STATUS[c] === status);
  if (codes.length === 0) throw new Error(`no error code has status ${status}`);
  return jsonResponse(errorBody(codes), `${description} (${codes.join(" / ")})`, headers);
}

type HeaderSpec = { description: string; required?: boolean; schema: { type: "string" | "integer"; enum?: string[] } };
const header = (description: string, type: "string" | "integer" = "string", values?: string[]): HeaderSpec => ({ description, schema: values ? { type, enum: values } : { type } });
/** The 503s' header (API.md: unavailable, with Retry-After). */
export const RETRY_AFTER = { "Retry-After": header("Seconds to wait before retrying", "integer") };
/** Every answer carries it (API.md). */
export const REQUEST_ID = {
  "X-Request-Id": { ...header("The request's id: the client's own, echoed as sent, else generated; error bodies carry it as request_id"), required: true },
};
/** The request header every operation reads (echoed in the answer's X-Request-Id). */
const REQUEST_ID_PARAM = {
  name: "X-Request-Id", in: "header", required: false, schema: { type: "string" },
  description: "Your own id for this request, echoed byte for byte in the answer's X-Request-Id and error body; one is generated when absent",
} as const;
/**
 * Bun's own answer, before the service runs, to a request line and headers over the service's
 * --max-http-header-size (64 KiB, src/runtime-flags.ts) or with more than about 200 header lines:
 * no body and no X-Request-Id. Any route can get it; a query string of several filters at their
 * longest can be that long (an audit: `path` and `referrer_domain` near 24,576 characters each).
 */
const HEADERS_TOO_LARGE = {
  description: "Request line and headers over 64 KiB (or more than about 200 header lines): the HTTP server's own answer before the service runs, with no body and no X-Request-Id",
};
/** The cached routes' answers (API.md: X-Cache). */
export const CACHE_HEADERS = {
  "X-Cache": header("HIT when the answer came from the cache, MISS when it was computed", "string", ["HIT", "MISS"]),
  Age: header("Seconds since the cached answer was computed", "integer"),
};

/** A JSON response described by a valibot schema; `headers` beyond X-Request-Id, which every answer has. */
export function jsonResponse(schema: v.GenericSchema, description: string, headers: Record<string, HeaderSpec> = {}) {
  return { description, headers: { ...REQUEST_ID, ...headers }, content: { "application/json": { schema: resolver(schema) } } };
}

const ERRORS = {
  400: errorResponseDoc(400, "Invalid input, with issues naming each field"),
  401: errorResponseDoc(401, "Missing, unknown or revoked credential"),
  403: errorResponseDoc(403, "A valid credential without access to this route or service"),
  404: errorResponseDoc(404, "No such route or resource"),
  405: errorResponseDoc(405, "Method not allowed on this route", { Allow: header("The methods the route answers") }),
  429: errorResponseDoc(429, "Rate limited (reserved: no route limits rates today)", RETRY_AFTER),
  500: errorResponseDoc(500, "A fault of the service itself, never of the input"),
  503: errorResponseDoc(503, "Temporarily unavailable", RETRY_AFTER),
};

type DescribeSpec = Parameters<typeof describeRoute>[0];

/** Documents a route: describeRoute plus the shared error responses (those of `errors` when given). */
export function describe(spec: DescribeSpec, errors?: ReadonlyArray<keyof typeof ERRORS>) {
  const shared = errors ? Object.fromEntries(errors.map((status) => [status, ERRORS[status]])) : ERRORS;
  return describeRoute({
    ...spec,
    parameters: [...(spec.parameters ?? []), REQUEST_ID_PARAM],
    responses: { ...shared, 431: HEADERS_TOO_LARGE, ...spec.responses },
  });
}

/**
 * `handler` carrying the route's description itself, the way describeRoute's middleware carries
 * it (the generator reads it off whichever handler of the route has it): the same document, one
 * middleware layer fewer on every request. For hot routes.
 */
export function documented<H extends object>(description: ReturnType<typeof describe>, handler: H): H {
  return Object.assign(handler, description);
}

type Operation = { parameters?: unknown[]; responses: Record<string, { description: string; headers?: unknown; content?: unknown }>; [k: string]: unknown };
type Paths = Record<string, Record<string, Operation>>;

const PREFLIGHT_HEADER = (description: string) => ({ description, schema: { type: "string" } });
/** The CORS preflight every ingest route answers (src/auth/ingest-cors.ts). */
const PREFLIGHT: Operation = {
  summary: "CORS preflight",
  tags: ["ingest"],
  security: [],
  description: "Answered 204 always; the Access-Control-Allow-* headers only for an Origin that the `key` query parameter's public key (else any public key) allows.",
  parameters: [
    { name: "Origin", in: "header", required: false, schema: { type: "string" } },
    { name: "key", in: "query", required: false, schema: { type: "string" }, description: "A public key (pk_…) whose origins decide" },
    REQUEST_ID_PARAM,
  ],
  responses: {
    204: {
      description: "Preflight answered",
      headers: {
        ...REQUEST_ID,
        "Access-Control-Allow-Origin": PREFLIGHT_HEADER("The request's Origin, echoed when allowed (never *)"),
        "Access-Control-Allow-Credentials": PREFLIGHT_HEADER("true when the origin is allowed"),
        "Access-Control-Allow-Methods": PREFLIGHT_HEADER("POST"),
        "Access-Control-Allow-Headers": PREFLIGHT_HEADER("The request headers a page may send"),
        "Access-Control-Max-Age": PREFLIGHT_HEADER("Seconds a browser may keep the answer"),
        Vary: PREFLIGHT_HEADER("Origin"),
      },
    },
    431: HEADERS_TOO_LARGE,
  },
};

/**
 * The generated paths plus what the generator leaves out: `head` beside every `get` (Hono answers
 * HEAD with the GET's status and headers, no body) and the ingest routes' `options` preflight.
 */
function withImplicitOperations(paths: Paths): Paths {
  for (const [path, ops] of Object.entries(paths)) {
    const get = ops.get;
    if (get && !ops.head) {
      const responses = Object.fromEntries(Object.entries(get.responses).map(([status, { description, headers }]) => [status, headers ? { description, headers } : { description }]));
      ops.head = { ...get, summary: `${String(get.summary ?? path)} (headers only)`, operationId: undefined, responses };
    }
    if (path.startsWith("/v1/ingest/") && ops.post && !ops.options) ops.options = PREFLIGHT;
  }
  return paths;
}

/** Serves the generated document at GET /v1/openapi.json (register after every route). */
export function registerOpenApiRoute(app: Hono<any>, info: { title?: string; version?: string } = {}): void {
  const options: Parameters<typeof generateSpecs>[1] = {
    // Its default leaves out paths whose last segment has a dot, this document's own among them.
    excludeStaticFile: false,
    documentation: {
      openapi: "3.1.0",
      info: { title: info.title ?? "Analytics service", version: info.version ?? "0.1.0", description: "See API.md for the meaning of every number." },
      components: {
        securitySchemes: {
          bearer: { type: "http", scheme: "bearer", description: "Admin token (ak_), ingest key (pk_/sk_) or the root token, per route" },
          apiKey: { type: "apiKey", in: "header", name: "X-API-Key", description: "Ingest keys only" },
          keyQuery: { type: "apiKey", in: "query", name: "key", description: "Public keys (pk_) only, for trackers that cannot set headers; a body field `key` works too" },
        },
      },
      security: [{ bearer: [] }],
    },
  };
  let specs: Awaited<ReturnType<typeof generateSpecs>> | undefined;
  app.get(
    "/v1/openapi.json",
    describeRoute({
      summary: "This document (OpenAPI 3.1)",
      tags: ["operations"],
      security: [],
      responses: {
        200: { description: "The OpenAPI document of every route", headers: REQUEST_ID, content: { "application/json": { schema: { type: "object" } } } },
        405: ERRORS[405],
        431: HEADERS_TOO_LARGE,
        500: ERRORS[500],
      },
      parameters: [REQUEST_ID_PARAM],
    }),
    async (c) => {
      specs ??= await generateSpecs(app, options, c).then((doc) => ({ ...doc, paths: withImplicitOperations(doc.paths as Paths) }));
      return c.json(specs);
    },
  );
}
