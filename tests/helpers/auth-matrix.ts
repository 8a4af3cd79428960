/**
 * The standard auth-rejection tests for one route, so every route is checked the same way.
 *
 *   let service: TestService, keys: MatrixKeys;     // built in beforeAll, hence the getters below
 *   beforeAll(async () => {
 *     service = await startTestService();           // or buildApp(...) with your route and the key routes
 *     keys = await createMatrixKeys({ app: service.app, rootToken: ROOT_TOKEN, serviceId: "shop" });
 *   });
 *   runAuthMatrix({
 *     name: "POST /v1/ingest/event", kind: "ingest",  // "ingest" | "admin" | "root"
 *     app: () => service.app, keys: () => keys,
 *     // A request that succeeds with good credentials, plus `headers`; put `opts.query` into the
 *     // URL and (ingest routes) `opts.bodyKey` into the body as `key`.
 *     request: (headers, opts) => new Request(`http://x/v1/ingest/event?${new URLSearchParams(opts.query)}`, {
 *       method: "POST", headers: { "Content-Type": "application/json", ...headers },
 *       body: JSON.stringify({ name: "signup", ...(opts.bodyKey ? { key: opts.bodyKey } : {}) }),
 *     }),
 *   });
 *
 * Admin routes must target `serviceId` (keys.admin may read it, keys.adminOther may not). Ingest
 * routes must mount ingestCors + ingestAuth and call resolveBodyKey. A good request must answer
 * 2xx (override with `accepted`); rejections must carry the contract's error body.
 */
import { describe, expect, test } from "bun:test";
import { generateKey } from "../../src/auth/key-format.ts";
import type { NewKey } from "../../src/auth/key-store.ts";

export interface MatrixKeys {
  public: string;
  secret: string;
  admin: string;
  /** An admin token for another service only. */
  adminOther: string;
  root: string;
  /** An origin `public` allows (and the only one). */
  allowedOrigin: string;
  revoked: { public: string; secret: string; admin: string };
}

export interface MatrixRequestOptions {
  /** Query parameters to add to the URL (the matrix puts keys here). */
  query: Record<string, string>;
  /** Ingest routes: the body's `key` field. */
  bodyKey?: string;
}

type Lazy<T> = T | (() => T);
type Fetcher = { request(req: Request): Response | Promise<Response> };

export interface AuthMatrixOptions {
  name: string;
  kind: "ingest" | "admin" | "root";
  app: Lazy<Fetcher>;
  keys: Lazy<MatrixKeys>;
  request: (headers: Record<string, string>, opts: MatrixRequestOptions) => Request | Promise<Request>;
  /** When a request with good credentials counts as accepted; default any 2xx. */
  accepted?: (res: Response) => boolean;
}

/** Creates, through the app's key routes, the keys runAuthMatrix needs (revoked ones revoked). */
export async function createMatrixKeys(opts: { app: Fetcher; rootToken: string; serviceId: string; allowedOrigin?: string }): Promise<MatrixKeys> {
  const { serviceId } = opts;
  const allowedOrigin = opts.allowedOrigin ?? "https://allowed.example";
  const call = async (method: string, path: string, body?: unknown) => {
    const headers = { Authorization: `Bearer ${opts.rootToken}`, "Content-Type": "application/json" };
    const res = await opts.app.request(new Request(`http://matrix${path}`, { method, headers, body: body === undefined ? null : JSON.stringify(body) }));
    if (!res.ok) throw new Error(`createMatrixKeys: ${method} ${path} answered ${res.status}: ${await res.text()}`);
    return res.status === 204 ? undefined : ((await res.json()) as { id: string; key: string });
  };
  const make = async (input: NewKey, revoke = false) => {
    const { serviceId: service_id, ...rest } = input as NewKey & { serviceId?: string };
    const created = (await call("POST", "/v1/keys", { ...rest, ...(service_id ? { service_id } : {}) }))!;
    if (revoke) await call("DELETE", `/v1/keys/${created.id}`);
    return created.key;
  };
  return {
    public: await make({ type: "public", serviceId, origins: [allowedOrigin], name: "matrix public" }),
    secret: await make({ type: "secret", serviceId, name: "matrix secret" }),
    admin: await make({ type: "admin", services: [serviceId], name: "matrix admin" }),
    adminOther: await make({ type: "admin", services: [`${serviceId}-other`], name: "matrix admin other" }),
    root: opts.rootToken,
    allowedOrigin,
    revoked: {
      public: await make({ type: "public", serviceId, origins: [allowedOrigin] }, true),
      secret: await make({ type: "secret", serviceId }, true),
      admin: await make({ type: "admin", services: [serviceId] }, true),
    },
  };
}

type ForKeys<T> = (k: MatrixKeys) => T;
interface Case {
  name: string;
  expect: 401 | 403 | "accepted";
  headers?: ForKeys<Record<string, string>>;
  query?: ForKeys<Record<string, string>>;
  bodyKey?: ForKeys<string>;
  check?: (res: Response, k: MatrixKeys) => void;
}

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

const COMMON: Case[] = [
  { name: "no credentials", expect: 401 },
  { name: "Basic Authorization", expect: 401, headers: () => ({ Authorization: "Basic dXNlcjpwYXNz" }) },
  { name: "empty Bearer", expect: 401, headers: () => ({ Authorization: "Bearer " }) },
  { name: "Bearer garbage", expect: 401, headers: () => bearer("not-a-key") },
  { name: "unknown public key", expect: 401, headers: () => bearer(generateKey("public")) },
  { name: "unknown secret key", expect: 401, headers: () => bearer(generateKey("secret")) },
  { name: "unknown admin token", expect: 401, headers: () => bearer(generateKey("admin")) },
  { name: "revoked public key", expect: 401, headers: (k) => bearer(k.revoked.public) },
  { name: "revoked secret key", expect: 401, headers: (k) => bearer(k.revoked.secret) },
  { name: "revoked admin token", expect: 401, headers: (k) => bearer(k.revoked.admin) },
  { name: "a near miss of a valid key", expect: 401, headers: (k) => bearer(`${k.secret.slice(0, -1)}${k.secret.endsWith("A") ? "B" : "A"}`) },
];

const allowCors = (res: Response, k: MatrixKeys) => expect(res.headers.get("access-control-allow-origin")).toBe(k.allowedOrigin);
const noCors = (res: Response) => expect(res.headers.get("access-control-allow-origin")).toBeNull();

const BY_KIND: Record<AuthMatrixOptions["kind"], Case[]> = {
  ingest: [
    { name: "secret key as Bearer", expect: "accepted", headers: (k) => bearer(k.secret) },
    { name: "secret key as X-API-Key", expect: "accepted", headers: (k) => ({ "X-API-Key": k.secret }) },
    { name: "public key without Origin", expect: "accepted", headers: (k) => bearer(k.public) },
    { name: "public key from its origin", expect: "accepted", headers: (k) => ({ "X-API-Key": k.public, Origin: k.allowedOrigin }), check: allowCors },
    { name: "public key in the query", expect: "accepted", query: (k) => ({ key: k.public }) },
    { name: "public key in the body, from its origin", expect: "accepted", bodyKey: (k) => k.public, headers: (k) => ({ Origin: k.allowedOrigin }), check: allowCors },
    { name: "public key from another origin", expect: 403, headers: (k) => ({ ...bearer(k.public), Origin: "https://evil.example" }), check: noCors },
    { name: "public key from a look-alike origin", expect: 403, headers: (k) => ({ ...bearer(k.public), Origin: `${k.allowedOrigin}.evil.example` }) },
    { name: "public key from its host over another scheme", expect: 403, headers: (k) => ({ ...bearer(k.public), Origin: k.allowedOrigin.replace(/^https?/, (s) => (s === "https" ? "http" : "https")) }) },
    { name: "public key in the query from another origin", expect: 403, query: (k) => ({ key: k.public }), headers: () => ({ Origin: "https://evil.example" }) },
    { name: "secret key in the query", expect: 403, query: (k) => ({ key: k.secret }) },
    { name: "secret key in the body", expect: 403, bodyKey: (k) => k.secret },
    { name: "admin token as Bearer", expect: 403, headers: (k) => bearer(k.admin) },
    { name: "admin token as X-API-Key", expect: 403, headers: (k) => ({ "X-API-Key": k.admin }) },
    { name: "admin token in the body", expect: 403, bodyKey: (k) => k.admin },
    { name: "root token as Bearer", expect: 403, headers: (k) => bearer(k.root) },
    { name: "root token as X-API-Key", expect: 403, headers: (k) => ({ "X-API-Key": k.root }) },
    { name: "root token in the query", expect: 403, query: (k) => ({ key: k.root }) },
    { name: "root token in the body", expect: 403, bodyKey: (k) => k.root },
    { name: "revoked public key in the query", expect: 401, query: (k) => ({ key: k.revoked.public }) },
    { name: "revoked public key in the body", expect: 401, bodyKey: (k) => k.revoked.public },
    { name: "unknown public key in the body", expect: 401, bodyKey: () => generateKey("public") },
  ],
  admin: [
    { name: "admin token as Bearer", expect: "accepted", headers: (k) => bearer(k.admin) },
    { name: "admin token for other services", expect: 403, headers: (k) => bearer(k.adminOther) },
    { name: "admin token as X-API-Key", expect: 401, headers: (k) => ({ "X-API-Key": k.admin }) },
    { name: "admin token in the query", expect: 401, query: (k) => ({ key: k.admin }) },
    { name: "public key as Bearer", expect: 403, headers: (k) => bearer(k.public) },
    { name: "secret key as Bearer", expect: 403, headers: (k) => bearer(k.secret) },
    { name: "root token as Bearer", expect: 403, headers: (k) => bearer(k.root) },
  ],
  root: [
    { name: "root token as Bearer", expect: "accepted", headers: (k) => bearer(k.root) },
    { name: "root token as X-API-Key", expect: 401, headers: (k) => ({ "X-API-Key": k.root }) },
    { name: "root token in the query", expect: 401, query: (k) => ({ key: k.root }) },
    { name: "a wrong root token", expect: 401, headers: (k) => bearer(`${k.root}x`) },
    { name: "public key as Bearer", expect: 403, headers: (k) => bearer(k.public) },
    { name: "secret key as Bearer", expect: 403, headers: (k) => bearer(k.secret) },
    { name: "admin token as Bearer", expect: 403, headers: (k) => bearer(k.admin) },
  ],
};

/** Access-Control-Allow-Credentials: "true" exactly when the origin is allowed (src/auth/ingest-cors.ts). */
export function expectCredentialsWithOriginOnly(res: Response): void {
  expect(res.headers.get("access-control-allow-credentials")).toBe(res.headers.get("access-control-allow-origin") === null ? null : "true");
}

/** Registers the standard auth tests for one route (see the usage at the top of this file). */
export function runAuthMatrix(opts: AuthMatrixOptions): void {
  const get = <T>(lazy: Lazy<T>): T => (typeof lazy === "function" ? (lazy as () => T)() : lazy);
  const accepted = opts.accepted ?? ((res: Response) => res.status >= 200 && res.status < 300);

  describe(`${opts.name}: auth`, () => {
    for (const c of [...COMMON, ...BY_KIND[opts.kind]]) {
      test(`${c.name} → ${c.expect}`, async () => {
        const keys = get(opts.keys);
        const res = await get(opts.app).request(await opts.request(c.headers?.(keys) ?? {}, { query: c.query?.(keys) ?? {}, bodyKey: c.bodyKey?.(keys) }));
        expectCredentialsWithOriginOnly(res);
        if (c.expect === "accepted") {
          if (!accepted(res)) throw new Error(`expected the request to be accepted, got ${res.status}: ${await res.text()}`);
        } else {
          const body = (await res.json()) as { error?: { code?: string }; request_id?: string };
          expect({ status: res.status, code: body.error?.code }).toEqual({ status: c.expect, code: c.expect === 401 ? "unauthorized" : "forbidden" });
          expect(body.request_id).toBe(res.headers.get("x-request-id") ?? "missing header");
        }
        c.check?.(res, keys);
      });
    }

    if (opts.kind === "ingest") {
      test("CORS preflight: allowed origin only, with credentials (a JSON-Blob sendBeacon needs them)", async () => {
        const keys = get(opts.keys);
        const url = (await opts.request({}, { query: { key: keys.public } })).url;
        const preflight = (origin: string) =>
          get(opts.app).request(new Request(url, { method: "OPTIONS", headers: { Origin: origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type" } }));
        const good = await preflight(keys.allowedOrigin);
        expect(good.status).toBe(204);
        expect(good.headers.get("access-control-allow-origin")).toBe(keys.allowedOrigin);
        expect(good.headers.get("access-control-allow-credentials")).toBe("true");
        const bad = await preflight("https://evil.example");
        expect(bad.headers.get("access-control-allow-origin")).toBeNull();
        expect(bad.headers.get("access-control-allow-credentials")).toBeNull();
      });
    }
  });
}
