// Key management over HTTP (root token only): POST /v1/keys, GET /v1/keys, DELETE /v1/keys/:id.
// The plaintext key appears once, in the 201 of POST; lists carry neither keys nor hashes.
import * as v from "valibot";
import { maxChars } from "../chars.ts";
import { ApiError, toIssues } from "../errors.ts";
import type { App } from "../http/app-env.ts";
import type { KeyRecord, KeyStore, NewKey } from "./key-store.ts";
import { rootAuth } from "./middleware.ts";
import { resolver } from "hono-openapi";
import { describe, errorResponseDoc, jsonResponse, REQUEST_ID } from "../http/openapi.ts";
import { readJsonBody } from "../ingest/read-body.ts";
import { wellFormed } from "../ingest/schemas.ts";
import { ANY_ORIGIN, normalizeOrigin } from "./origin.ts";

const ServiceId = v.pipe(v.string(), v.regex(/^[a-z0-9_-]{1,64}$/, "expected 1–64 characters of a-z, 0-9, _ and -"));
// Stored in ClickHouse like every other string: a lone surrogate would make the insert fail (500).
const Name = v.optional(v.pipe(maxChars(120, "expected at most 120 characters"), wellFormed), "");
const Origin = v.pipe(
  v.string(),
  // The URL parser takes "https://*.shop.example" as a host, which no browser sends: the key would
  // refuse every page it was meant for (isolation audit, 2026-11-29).
  v.check((s) => s === ANY_ORIGIN || !s.includes("*"), "wildcards inside an origin (https://*.shop.example) are not supported: list each origin, or send * alone to allow any"),
  v.check((s) => s === ANY_ORIGIN || normalizeOrigin(s) !== null, "expected an http(s) origin such as https://shop.example (no path), or *"),
  v.transform((s) => (s === ANY_ORIGIN ? s : normalizeOrigin(s)!)),
  // What the checks enforce, as far as JSON Schema can say it (the document's reader validates with
  // it): no user, no spaces, a port up to 65535 (an audit found those allowed by a looser pattern).
  v.metadata({
    pattern: String.raw`^(\*|[Hh][Tt][Tt][Pp][Ss]?://(?:[^/?#*@\s:\[\]]+|\[[0-9A-Fa-f:.]+\])(?::0*(?:6553[0-5]|655[0-2]\d|65[0-4]\d\d|6[0-4]\d{3}|[1-5]\d{4}|\d{1,4})?)?/?)$`,
    description: "An http(s) origin (scheme, host, optional port up to 65535; no user, no path), or * alone",
  }),
);
/** `"*"` only as the list's one element (a JSON Schema form of the "send it alone" checks). */
const STAR_ALONE = { anyOf: [{ maxItems: 1 }, { not: { contains: { const: "*" } } }] };
const Origins = v.pipe(
  v.array(Origin),
  v.check((list) => !list.includes(ANY_ORIGIN) || list.length === 1, '"*" already means every origin; send it alone'),
  v.metadata(STAR_ALONE),
);
const Services = v.pipe(
  v.array(v.union([v.literal("*"), ServiceId], 'expected a service id or "*"')),
  v.minLength(1, 'expected at least one service id, or ["*"] for all'),
  v.maxLength(1000, "expected at most 1000 services"),
  v.check((list) => !list.includes("*") || list.length === 1, '"*" already means every service; send it alone'),
  v.metadata(STAR_ALONE),
);
/**
 * POST /v1/keys body. Fields that do not apply to the key's type are ignored (API.md shows one
 * body with every field), and the answer names them in `ignored_fields`, so that `origins` sent
 * with a secret key (or a misspelt field) is not taken for a restriction that holds. `origins` is
 * optional for public keys and defaults to none: such a key is refused for every browser request
 * (Origin header) and accepted from servers and tools, so a forgotten allow-list never opens a key
 * to every web site. An admin token takes `services`, or
 * `service_id` as a one-service list (both only when they say the same).
 */
export const CreateKeyBody = v.variant(
  "type",
  [
    v.object({ type: v.literal("public"), service_id: ServiceId, origins: v.optional(v.pipe(Origins, v.maxLength(100, "expected at most 100 origins")), []), name: Name }),
    v.object({ type: v.literal("secret"), service_id: ServiceId, name: Name }),
    v.pipe(
      v.object({ type: v.literal("admin"), services: v.optional(Services), service_id: v.optional(ServiceId), name: Name }),
      v.forward(
        v.partialCheck([["services"], ["service_id"]], (b) => b.services !== undefined || b.service_id !== undefined, 'expected services (a list of service ids, or ["*"])'),
        ["services"],
      ),
      // Both, naming different services: which one was meant is a guess, so neither is taken.
      v.forward(
        v.partialCheck(
          [["services"], ["service_id"]],
          (b) => b.services === undefined || b.service_id === undefined || (b.services.length === 1 && b.services[0] === b.service_id),
          "service_id and services name different services: send services alone",
        ),
        ["service_id"],
      ),
      v.metadata({
        anyOf: [{ required: ["services"] }, { required: ["service_id"] }],
        description: "services, or a one-service service_id; both only when services is exactly [service_id] (else 400 invalid_body)",
      }),
    ),
  ],
  'expected an object with "type": "public", "secret" or "admin"',
);
export type CreateKeyBody = v.InferOutput<typeof CreateKeyBody>;

/** The fields each type of key reads; any other field of the body is named as ignored. */
const KEY_FIELDS: Record<CreateKeyBody["type"], ReadonlySet<string>> = {
  public: new Set(["type", "service_id", "origins", "name"]),
  secret: new Set(["type", "service_id", "name"]),
  admin: new Set(["type", "services", "service_id", "name"]),
};

/** The fields of `input` (an object CreateKeyBody accepted) that a key of `type` does not read. */
export function ignoredKeyFields(input: object, type: CreateKeyBody["type"]): string[] {
  return Object.keys(input).filter((field) => !KEY_FIELDS[type].has(field));
}

/** A key as the API shows it (snake_case, no secret). */
export function keyJson(record: KeyRecord) {
  return {
    id: record.id,
    type: record.type,
    name: record.name,
    service_id: record.serviceId,
    services: record.services,
    origins: record.origins,
    key_prefix: record.keyPrefix,
    created_at: record.createdAt,
    revoked_at: record.revokedAt,
  };
}

const KEY_ID = /^key_[0-9A-Za-z]{16}$/;
const MAX_BODY_BYTES = 64 * 1024;

/** Registers the key routes, each behind rootAuth. */
export function registerKeyRoutes(app: App, deps: { store: KeyStore; rootToken: string }): void {
  const auth = rootAuth(deps.rootToken, { store: deps.store });

  const keysDoc = (summary: string, status: number, schema?: v.GenericSchema, more: Record<number, ReturnType<typeof jsonResponse>> = {}) =>
    describe({ summary, tags: ["keys"], responses: { ...more, [status]: schema ? jsonResponse(schema, summary) : { description: summary, headers: REQUEST_ID } } });
  const bodyErrors = {
    413: errorResponseDoc(413, "Body over 64 KiB"),
    415: errorResponseDoc(415, "Content-Type not accepted"),
  };
  const KeyJson = v.object({
    id: v.string(), type: v.picklist(["public", "secret", "admin"]), name: v.string(), service_id: v.nullable(v.string()), services: v.array(v.string()),
    origins: v.array(v.string()), key_prefix: v.string(), created_at: v.string(), revoked_at: v.nullable(v.string()),
  });

  // Documents the request body; validation itself reads the body once, in the route.
  const createBody = { schema: resolver(CreateKeyBody) };
  const validatorDoc = describe({ requestBody: { required: true, content: { "application/json": createBody, "text/plain": createBody } } });

  const Created = v.object({
    ...KeyJson.entries,
    key: v.string(),
    ignored_fields: v.optional(v.pipe(v.array(v.string()), v.description("fields of the request this type of key does not read (only when there were any)"))),
  });
  app.post("/v1/keys", keysDoc("Create a key (the key is shown once)", 201, Created, bodyErrors), validatorDoc, auth, async (c) => {
    const input = await jsonBody(c.req.raw);
    const body = v.safeParse(CreateKeyBody, input);
    if (!body.success) throw new ApiError("invalid_body", "Invalid key request", { issues: toIssues(body.issues) });
    const { record, key } = await deps.store.create(toNewKey(body.output));
    const ignored = ignoredKeyFields(input as object, body.output.type);
    return c.json({ ...keyJson(record), key, ...(ignored.length > 0 ? { ignored_fields: ignored } : {}) }, 201);
  });

  app.get("/v1/keys", keysDoc("List keys (no secrets)", 200, v.object({ data: v.array(KeyJson) })), auth, async (c) => c.json({ data: (await deps.store.list()).map(keyJson) }));

  app.delete("/v1/keys/:id", keysDoc("Revoke a key", 204), auth, async (c) => {
    const id = c.req.param("id");
    // A malformed id cannot exist; no need to ask ClickHouse.
    if (!KEY_ID.test(id) || !(await deps.store.revoke(id))) throw new ApiError("not_found", `No key with id ${id.slice(0, 64)}`);
    return c.body(null, 204);
  });
}

function toNewKey(body: CreateKeyBody): NewKey {
  if (body.type === "admin") return { type: "admin", services: body.services ?? [body.service_id!], name: body.name };
  if (body.type === "public") return { type: "public", serviceId: body.service_id, origins: body.origins, name: body.name };
  return { type: "secret", serviceId: body.service_id, name: body.name };
}

/** The body under the same rules as ingest bodies (type, encoding, limit checked before reading). */
async function jsonBody(request: Request): Promise<unknown> {
  try {
    return await readJsonBody(request, MAX_BODY_BYTES);
  } catch (err) {
    if (err instanceof ApiError && err.code === "payload_too_large") throw new ApiError("payload_too_large", "Key requests are at most 64 KiB");
    throw err;
  }
}
