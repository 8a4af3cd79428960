// Who may call what (API.md "Credentials"): ingest keys on ingest routes, admin tokens on query
// routes, the root token on key management only. Each factory checks its options once and returns
// a named handler that sets the request's Principal or throws ApiError. 401 means "no valid
// credential"; 403 means "a valid credential, the wrong kind or place for this route".
import type { Context, MiddlewareHandler } from "hono";
import { ApiError } from "../errors.ts";
import type { AppEnv, Principal } from "../http/app-env.ts";
import { constantTimeEqual, hashKey } from "./key-format.ts";
import type { KeyRecord, KeyStore } from "./key-store.ts";
import { originAllowed } from "./origin.ts";

type Ctx = Context<AppEnv>;
type IngestPrincipal = Extract<Principal, { kind: "ingest" }>;
type AdminPrincipal = Extract<Principal, { kind: "admin" }>;
/** Where an ingest key arrived: headers are fine for every ingest key, the rest for public keys. */
type KeySource = "header" | "query" | "body";

export interface AuthOptions {
  /** The root token, so that presenting it here is answered 403 (wrong credential) not 401. */
  rootToken?: string;
}

/**
 * Ingest routes: a key from `Authorization: Bearer`, `X-API-Key` or (public keys) `?key=`.
 * With none of them the request goes on unauthenticated: the route parses its body and calls
 * resolveBodyKey(), which answers 401 when the body has no key either.
 */
export function ingestAuth(store: KeyStore, opts: AuthOptions = {}): MiddlewareHandler<AppEnv> {
  const isRoot = rootMatcher(opts.rootToken);
  return async function ingestAuthMiddleware(c, next) {
    const bearer = bearerToken(c);
    const apiKey = nonEmpty(c.req.header("x-api-key"));
    const header = bearer ?? apiKey;
    const query = header === undefined ? nonEmpty(c.req.query("key")) : undefined;
    // `?key=A&key=B` used the first and ignored the other: which key was meant is the sender's to say.
    if (query !== undefined && (c.req.queries("key")?.length ?? 0) > 1) {
      const message = "given more than once; send one key";
      throw new ApiError("invalid_query", `key: ${message}`, { issues: [{ path: "key", message }] });
    }
    if (header !== undefined || query !== undefined) {
      const key = (header ?? query)!;
      const source = header !== undefined ? "header" : "query";
      if (isRoot(key)) throw rootOnIngest();
      // The usual request presents a key the store holds already: decided without waiting.
      const record = store.verifyKnown?.(key);
      if (record === null) throw new ApiError("unauthorized", "Unknown or revoked API key");
      c.set("principal", record !== undefined ? principalOf(c, record, source) : await ingestPrincipalFor(c, store, key, source));
      // A key that works, beside another key (the hostile-input audit: the first was taken and the
      // other ignored, so a misconfigured client wrote into a service it may not have meant). The
      // same key twice is one key. The body's key is compared in resolveBodyKey.
      if (bearer !== undefined && apiKey !== undefined && apiKey !== bearer) throw twoKeys("Authorization and X-API-Key");
      if (header !== undefined && c.req.url.includes("key=")) {
        const queried = c.req.queries("key")?.map((k) => k.trim()).filter((k) => k !== "") ?? [];
        if (queried.some((k) => k !== header)) throw twoKeys("The key header and the key query parameter");
        // The same secret key in the URL as well: the URL is what leaks (the bad-input audit of
        // session 35 found it accepted because the header carried it too).
        if (queried.length > 0 && (c.get("principal") as IngestPrincipal).type === "secret") throw secretElsewhere();
      }
      c.set("ingestKey", key);
    }
    await next();
  };
}

function rootOnIngest(): ApiError {
  return new ApiError("forbidden", "The root token manages keys only; ingest with a public or secret key");
}

/** URLs and bodies end up in proxy and browser logs; a secret key sent there must be considered leaked. */
function secretElsewhere(): ApiError {
  return new ApiError("forbidden", "Secret keys are accepted only in the Authorization or X-API-Key header; revoke a key that was sent elsewhere");
}

function twoKeys(where: string): ApiError {
  return new ApiError("unauthorized", `${where} carry two different keys: send one key`);
}

/** The 401 of an ingest request without any key. */
export const MISSING_INGEST_KEY = "Missing API key: send Authorization: Bearer <key>, X-API-Key, or (public keys) a key query parameter or body field";

/**
 * For ingest routes, after the body is parsed: the principal from the headers or query if
 * ingestAuth set one, else from the body's `key` field (public keys only). Throws 401 without any,
 * 400 when the body's `key` is not a string, 403 for the root token (`isRoot`: rootMatcher).
 */
export async function resolveBodyKey(c: Ctx, store: KeyStore, bodyKey: unknown, isRoot: (presented: string) => boolean): Promise<IngestPrincipal> {
  if (bodyKey !== undefined && bodyKey !== null && typeof bodyKey !== "string") {
    const message = "expected a string: a public key (pk_...)";
    throw new ApiError("invalid_body", `key: ${message}`, { issues: [{ path: "key", message }] });
  }
  const current = c.get("principal") as Principal | undefined;
  const key = typeof bodyKey === "string" ? nonEmpty(bodyKey) : undefined;
  if (current?.kind === "ingest") {
    if (key !== undefined && key !== c.get("ingestKey")) throw twoKeys("The body's key and the request's header or query parameter");
    // A secret key copied into the body is as exposed as one sent there alone.
    if (key !== undefined && current.type === "secret") throw secretElsewhere();
    return current;
  }
  if (key === undefined) {
    throw new ApiError("unauthorized", MISSING_INGEST_KEY);
  }
  if (isRoot(key)) throw rootOnIngest();
  const principal = await ingestPrincipalFor(c, store, key, "body");
  c.set("principal", principal);
  return principal;
}

/** Query routes: only `Authorization: Bearer ak_...`. */
export function adminAuth(store: KeyStore, opts: AuthOptions = {}): MiddlewareHandler<AppEnv> {
  const isRoot = rootMatcher(opts.rootToken);
  return async function adminAuthMiddleware(c, next) {
    const token = requireBearer(c, "an admin token");
    if (isRoot(token)) throw new ApiError("forbidden", "The root token manages keys only; read with an admin token");
    const record = await verified(store, token);
    if (record.type !== "admin") throw new ApiError("forbidden", `A ${record.type} key cannot read; use an admin token`);
    c.set("principal", { kind: "admin", keyId: record.id, services: record.services });
    await next();
  };
}

/** Key management: only `Authorization: Bearer <root token>`. */
export function rootAuth(rootToken: string, opts: { store?: KeyStore } = {}): MiddlewareHandler<AppEnv> {
  if (typeof rootToken !== "string" || rootToken.length === 0) throw new Error("rootAuth: the root token must not be empty");
  const isRoot = rootMatcher(rootToken);
  return async function rootAuthMiddleware(c, next) {
    const token = requireBearer(c, "the root token");
    if (!isRoot(token)) {
      // A working key in the wrong place is worth telling apart from a typo.
      if (opts.store && (await opts.store.verify(token))) throw new ApiError("forbidden", "Only the root token manages keys");
      throw new ApiError("unauthorized", "Invalid root token");
    }
    c.set("principal", { kind: "root" });
    await next();
  };
}

/** Throws 403 unless the principal may touch `serviceId` (admin: in its services or `*`; ingest: its own). */
export function assertServiceAccess(principal: Principal | undefined, serviceId: string): void {
  if (principal?.kind === "admin") {
    if (principal.services.includes("*") || principal.services.includes(serviceId)) return;
    throw new ApiError("forbidden", `This admin token has no access to service "${serviceId}"`);
  }
  if (principal?.kind === "ingest") {
    if (principal.serviceId === serviceId) return;
    throw new ApiError("forbidden", `This key ingests for service "${principal.serviceId}" only`);
  }
  throw new ApiError("forbidden", "This credential reads no service data");
}

/** The admin principal adminAuth set; throws 401 if the route was mounted without it. */
export function adminPrincipal(c: Ctx): AdminPrincipal {
  const p = c.get("principal") as Principal | undefined;
  if (p?.kind !== "admin") throw new ApiError("unauthorized", "Missing admin token");
  return p;
}

async function ingestPrincipalFor(c: Ctx, store: KeyStore, key: string, source: KeySource): Promise<IngestPrincipal> {
  return principalOf(c, await verified(store, key), source);
}

/** The ingest principal of a verified key presented through `source`; 403 when it may not ingest from there. */
function principalOf(c: Ctx, record: KeyRecord, source: KeySource): IngestPrincipal {
  if (record.type === "admin") throw new ApiError("forbidden", "Admin tokens read query routes; they cannot ingest");
  if (record.type === "secret" && source !== "header") {
    throw secretElsewhere();
  }
  const origin = c.req.header("origin");
  // No Origin: a server or a tool, not a browser page; the allow-list guards browsers only.
  if (record.type === "public" && origin !== undefined && !originAllowed(record.origins, origin)) {
    // A key made without `origins` allows none: say so, since the fix is the key's, not the page's.
    const none = record.origins.length === 0 ? ": it has no allowed origins (create a public key with `origins`, or [\"*\"] for any)" : "";
    throw new ApiError("forbidden", `Origin ${origin.slice(0, 200)} is not allowed for this key${none}`);
  }
  return { kind: "ingest", keyId: record.id, type: record.type, serviceId: record.serviceId ?? "", origins: record.origins };
}

async function verified(store: KeyStore, key: string): Promise<KeyRecord> {
  const record = await store.verify(key);
  if (!record) throw new ApiError("unauthorized", "Unknown or revoked API key");
  return record;
}

/** The Bearer token, undefined without an Authorization header; 401 when the header is malformed. */
function bearerToken(c: Ctx): string | undefined {
  const header = c.req.header("authorization");
  if (header === undefined) return undefined;
  const match = /^Bearer +(\S+) *$/i.exec(header);
  if (!match) throw new ApiError("unauthorized", "Malformed Authorization header: expected Bearer <token>");
  return match[1];
}

function requireBearer(c: Ctx, what: string): string {
  const token = bearerToken(c);
  if (token !== undefined) return token;
  throw new ApiError("unauthorized", `Missing credentials: send ${what} as Authorization: Bearer <token>`);
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}

/** Compares against the root token by SHA-256, so the comparison time reveals neither length nor content. */
export function rootMatcher(rootToken: string | undefined): (presented: string) => boolean {
  if (!rootToken) return () => false;
  const expected = hashKey(rootToken);
  return (presented) => constantTimeEqual(hashKey(presented), expected);
}
