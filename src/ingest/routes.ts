// The ingest routes: POST /v1/ingest/{session,pageview,event,batch}. They read the body under its
// limit, authenticate (header, query or body key), validate, and hand the items to the ingestor.
// A bad single item is a 400; a bad batch item is dropped with its index and reason.
import type { Context, MiddlewareHandler } from "hono";
import * as v from "valibot";
import { MISSING_INGEST_KEY, resolveBodyKey } from "../auth/middleware.ts";
import type { KeyStore } from "../auth/key-store.ts";
import { ApiError, toIssues } from "../errors.ts";
import type { App, AppEnv } from "../http/app-env.ts";
import type { IngestResult } from "./ingestor.ts";
import type { RequestContext } from "./pipeline.ts";
import { ACCEPTED_ENCODING_PATTERN, ACCEPTED_ENCODINGS, isEmptyBodyError, readJsonBody } from "./read-body.ts";
import { resolver } from "hono-openapi";
import { describe, documented, errorResponseDoc, jsonResponse } from "../http/openapi.ts";
import { BatchBody, BatchItemDoc, IngestResponse, ITEM_SCHEMAS, type ItemType } from "./schemas.ts";

/** Body limits (API.md): checked before parsing, on the wire and after decompression. */
export const SINGLE_LIMIT_BYTES = 64 * 1024;
export const BATCH_LIMIT_BYTES = 1024 * 1024;

export interface IngestRouteDeps {
  store: KeyStore;
  auth: MiddlewareHandler<AppEnv>;
  cors: MiddlewareHandler<AppEnv>;
  ingest: (ctx: RequestContext, raws: readonly unknown[], type?: ItemType) => Promise<IngestResult>;
  trustProxy: boolean;
  /** Whether a body `key` is the root token (rootMatcher in auth/middleware.ts), answered 403. */
  isRootToken: (presented: string) => boolean;
  /** The peer address of the connection (runtime-specific; undefined when unknown). */
  socketIp: (c: Context<AppEnv>) => string | undefined;
  now?: () => number;
}

/** Registers the four ingest routes (and their CORS preflights). */
export function registerIngestRoutes(app: App, deps: IngestRouteDeps): void {
  const now = deps.now ?? Date.now;
  // CORS then the key check, as one middleware layer (errors of the key check carry CORS's Vary:
  // it is set before the route runs). Only for the methods the routes answer: any other method
  // gets its 405 whatever key it carries (an admin key on GET got the key check's 403).
  // A path under /v1/ingest/ that is no route gets its 404, with or without a key.
  const { cors, auth } = deps;
  const routes = new Set(["session", "pageview", "event", "batch"].map((type) => `/v1/ingest/${type}`));
  app.on(["POST", "OPTIONS"], "/v1/ingest/*", async function ingestGuard(c, next) {
    if (!routes.has(c.req.path)) return next();
    return cors(c, () => auth(c, next) as Promise<void>);
  });

  const context = async (c: Context<AppEnv>, bodyKey: unknown): Promise<RequestContext> => {
    const principal = await resolveBodyKey(c, deps.store, bodyKey, deps.isRootToken);
    let socketIp: string | undefined | null = null;
    return {
      serviceId: principal.serviceId,
      keyType: principal.type,
      headers: c.req.raw.headers,
      // Asked only when an item needs the connection's address (a secret key's items usually carry one).
      get socketIp() {
        if (socketIp === null) socketIp = deps.socketIp(c);
        return socketIp;
      },
      receivedAt: now(),
      trustProxy: deps.trustProxy,
    };
  };

  /**
   * The body. Without a header or query key, a body that was sent but cannot be read (bad JSON,
   * UTF-8 or gzip) is still a 400 invalid_body: it is the first thing to fix (a sendBeacon body
   * that carries its `key` cannot be read for it), and the message says that no key came
   * otherwise. It was a 401 "Missing API key", which named neither the broken body nor the key the
   * client did send in it. A request with no body at all and no key is a 401: the key is missing.
   */
  const readBody = async (c: Context<AppEnv>, limit: number): Promise<unknown> => {
    try {
      return await readJsonBody(c.req.raw, limit);
    } catch (err) {
      if (err instanceof ApiError && err.code === "invalid_body" && c.get("principal") === undefined) {
        if (isEmptyBodyError(err)) throw new ApiError("unauthorized", MISSING_INGEST_KEY);
        throw new ApiError("invalid_body", `${err.message}. No API key came in a header or the query either, and a body key can only be read from a valid body`);
      }
      throw err;
    }
  };

  for (const type of ["session", "pageview", "event"] as const) {
    const bodyDoc = v.object({ ...ITEM_SCHEMAS[type].entries, key: v.nullish(v.string()) });
    // The session route answers its session_id always (null when the item was dropped).
    const accepted = type === "session" ? v.object({ ...IngestResponse.entries, session_id: v.nullable(v.string()) }) : IngestResponse;
    app.post(`/v1/ingest/${type}`, documented(docs(bodyDoc, `Track one ${type}`, SINGLE_LIMIT_BYTES, accepted), async (c: Context<AppEnv>) => {
      const body = await readBody(c, SINGLE_LIMIT_BYTES);
      const ctx = await context(c, bodyKey(body));
      if (typeof body !== "object" || body === null || Array.isArray(body)) {
        throw new ApiError("invalid_body", "The body must be a JSON object");
      }
      // The pipeline validates (one valibot pass) and checks what the key may set; for a single
      // item, its verdict is the answer: invalid → 400, forbidden → 403; bots and duplicates → 202.
      const result = await deps.ingest(ctx, [body], type);
      const drop = result.dropped[0];
      if (drop?.reason === "invalid") {
        throw new ApiError("invalid_body", `The ${type} is not valid: ${drop.message}`, { issues: drop.issues ?? [{ path: "", message: drop.message }] });
      }
      if (drop?.reason === "forbidden") throw new ApiError("forbidden", drop.message);
      const { session_ids, ...answer } = result;
      // A dropped session item (a bot, or a duplicate: its session is not looked up) has none: null.
      return c.json(type === "session" ? { ...answer, session_id: session_ids[0] ?? null } : answer, 202);
    }));
  }

  const batchDocs = docs(v.object({ ...BatchBody.entries, items: v.pipe(v.array(BatchItemDoc), v.minLength(1), v.maxLength(500)) }), "Track 1–500 items of any type", BATCH_LIMIT_BYTES);
  app.post("/v1/ingest/batch", documented(batchDocs, async (c: Context<AppEnv>) => {
    const body = await readBody(c, BATCH_LIMIT_BYTES);
    const ctx = await context(c, bodyKey(body));
    const parsed = v.safeParse(BatchBody, body);
    if (!parsed.success) {
      const issues = toIssues(parsed.issues);
      throw new ApiError("invalid_body", `The batch is not valid: ${issues[0]!.path ? `${issues[0]!.path}: ` : ""}${issues[0]!.message}`, { issues });
    }
    if (parsed.output.service_id !== undefined && parsed.output.service_id !== ctx.serviceId) {
      throw new ApiError("forbidden", `service_id ${parsed.output.service_id} is not the key's service (${ctx.serviceId})`);
    }
    const { session_ids: _, ...answer } = await deps.ingest(ctx, parsed.output.items);
    // Issue paths start at the body, as in every error body: items.3.url (the pipeline's are the item's own).
    for (const d of answer.dropped) {
      if (d.issues) d.issues = d.issues.map((i) => ({ ...i, path: i.path ? `items.${d.index}.${i.path}` : `items.${d.index}` }));
    }
    return c.json(answer, 202);
  }));
}

function bodyKey(body: unknown): unknown {
  return typeof body === "object" && body !== null && !Array.isArray(body) ? (body as { key?: unknown }).key : undefined;
}

/** OpenAPI description of an ingest route, from the same schema the route validates with. */
function docs(schema: v.GenericSchema, summary: string, limit: number, accepted: v.GenericSchema = IngestResponse) {
  const content = { schema: resolver(schema) };
  return describe({
    summary,
    tags: ["ingest"],
    // Any one of them (API.md "Credentials"); a body `key` needs no scheme.
    security: [{ bearer: [] }, { apiKey: [] }, { keyQuery: [] }],
    description: `JSON, or text/plain holding JSON (sendBeacon); gzip allowed. At most ${limit} bytes, also after decompression. ` +
      "Keys: Authorization: Bearer, X-API-Key, or for public keys the key query parameter or body field.",
    parameters: [
      { name: "key", in: "query", required: false, schema: { type: "string" }, description: "A public key (pk_…), for trackers that cannot set headers" },
      {
        name: "Content-Encoding",
        in: "header",
        required: false,
        schema: { type: "string", pattern: ACCEPTED_ENCODING_PATTERN },
        example: "gzip",
        description: `One of ${ACCEPTED_ENCODINGS.join(", ")}, in any case: gzip (or x-gzip, its alias) for a compressed body; identity, empty or absent for none. Any other encoding is 415`,
      },
    ],
    requestBody: { required: true, content: { "application/json": content, "text/plain": content } },
    responses: {
      202: jsonResponse(accepted, "Accepted: what was kept, and each dropped item with its index and reason"),
      413: errorResponseDoc(413, "Body over the limit"),
      415: errorResponseDoc(415, "Content-Type or Content-Encoding not accepted"),
    },
  });
}
