import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { buildApp } from "../../src/app.ts";
import { generateKey, generateRootToken } from "../../src/auth/key-format.ts";
import { registerKeyRoutes } from "../../src/auth/key-routes.ts";
import { ClickHouseKeyStore } from "../../src/auth/key-store.ts";
import { ingestCors } from "../../src/auth/ingest-cors.ts";
import { adminAuth, adminPrincipal, assertServiceAccess, ingestAuth, resolveBodyKey, rootAuth, rootMatcher } from "../../src/auth/middleware.ts";
import type { App } from "../../src/http/app-env.ts";
import { silentLogger } from "../../src/logger.ts";
import { createMetrics } from "../../src/ops/metrics.ts";
import type { ClickHouse } from "../../src/storage/clickhouse.ts";
import { createMatrixKeys, runAuthMatrix, type MatrixKeys } from "../helpers/auth-matrix.ts";
import { keysDatabase } from "./keys-db.ts";

const ROOT = generateRootToken();
let ch: ClickHouse;
let store: ClickHouseKeyStore;
let app: App;
let keys: MatrixKeys;

/** Stand-ins for the real ingest and query routes, wired the way those must be. */
function testRoutes(a: App): void {
  a.use("/t/ingest", ingestCors(store), ingestAuth(store, { rootToken: ROOT }));
  a.post("/t/ingest", async (c) => {
    const body = (await c.req.json().catch(() => ({}))) as { key?: unknown; service_id?: string; fail?: boolean };
    const principal = await resolveBodyKey(c, store, body.key, rootMatcher(ROOT));
    if (body.service_id !== undefined) assertServiceAccess(principal, body.service_id);
    if (body.fail) return c.json({ error: { code: "invalid_body", message: "x" } }, 400);
    return c.json({ principal }, 202);
  });
  a.get("/t/query", adminAuth(store, { rootToken: ROOT }), (c) => {
    const principal = adminPrincipal(c);
    assertServiceAccess(principal, c.req.query("service_id") ?? "");
    return c.json({ principal });
  });
  registerKeyRoutes(a, { store, rootToken: ROOT });
}

beforeAll(async () => {
  ({ ch } = await keysDatabase());
  store = new ClickHouseKeyStore({ client: ch.client });
  await store.start();
  app = buildApp({ logger: silentLogger, metrics: createMetrics(), readiness: async () => [], routes: [testRoutes] });
  keys = await createMatrixKeys({ app, rootToken: ROOT, serviceId: "shop", allowedOrigin: "https://shop.example" });
});
afterAll(async () => {
  await store.stop();
  await ch.close();
});

function ingest(headers: Record<string, string>, body: Record<string, unknown> = {}, query = ""): Promise<Response> {
  return Promise.resolve(app.request(`/t/ingest${query}`, { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body: JSON.stringify(body) }));
}
function preflight(origin: string | undefined, query = ""): Promise<Response> {
  const headers: Record<string, string> = { "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,x-api-key" };
  if (origin) headers.Origin = origin;
  return Promise.resolve(app.request(`/t/ingest${query}`, { method: "OPTIONS", headers }));
}

runAuthMatrix({
  name: "ingest stand-in", kind: "ingest", app: () => app, keys: () => keys,
  request: (headers, opts) => new Request(`http://test/t/ingest?${new URLSearchParams(opts.query)}`, {
    method: "POST", headers: { "Content-Type": "text/plain", ...headers }, body: JSON.stringify(opts.bodyKey ? { key: opts.bodyKey } : {}),
  }),
});
runAuthMatrix({
  name: "query stand-in", kind: "admin", app: () => app, keys: () => keys,
  request: (headers, opts) => new Request(`http://test/t/query?${new URLSearchParams({ service_id: "shop", ...opts.query })}`, { headers }),
});

describe("ingestAuth", () => {
  test("sets the principal from each place a key may come from", async () => {
    const expected = { kind: "ingest", type: "public", serviceId: "shop", origins: ["https://shop.example"] };
    for (const res of [
      await ingest({ Authorization: `Bearer ${keys.public}` }),
      await ingest({ "X-API-Key": keys.public }),
      await ingest({}, {}, `?key=${keys.public}`),
      await ingest({}, { key: keys.public }),
    ]) {
      expect(res.status).toBe(202);
      expect(((await res.json()) as { principal: unknown }).principal).toMatchObject(expected);
    }
    const secret = (await (await ingest({ "X-API-Key": keys.secret })).json()) as { principal: { type: string } };
    expect(secret.principal.type).toBe("secret");
  });

  // The bad-input audit: `?key=A&key=B` used the first key and answered 202.
  test("a key query parameter sent twice is 400 invalid_query naming it, whichever comes first", async () => {
    for (const query of [`?key=${keys.public}&key=pk_garbage`, `?key=pk_garbage&key=${keys.public}`, `?key=${keys.public}&key=${keys.public}`]) {
      const res = await ingest({}, {}, query);
      const body = (await res.json()) as { error: { code: string; issues: Array<{ path: string; message: string }> } };
      expect([query, res.status, body.error.code]).toEqual([query, 400, "invalid_query"]);
      expect(body.error.issues).toEqual([{ path: "key", message: "given more than once; send one key" }]);
    }
    // Beside a key in a header, they are keys other than the header's (below).
    expect((await ingest({ "X-API-Key": keys.public }, {}, `?key=a&key=b`)).status).toBe(401);
  });

  // The hostile-input audit of session 23: with two different keys the header's was taken and the
  // other ignored (202), so a misconfigured client wrote into the header key's service.
  test("two different keys in one request are refused (401), wherever they are; the same key twice is one key", async () => {
    const other = generateKey("public");
    const refused = [
      [{ Authorization: `Bearer ${keys.secret}`, "X-API-Key": keys.public }, {}, ""],
      [{ Authorization: `Bearer ${keys.public}`, "X-API-Key": "garbage" }, {}, ""],
      [{ Authorization: `Bearer ${keys.secret}` }, {}, `?key=${keys.public}`],
      [{ "X-API-Key": keys.public }, {}, `?key=${other}`],
      [{ Authorization: `Bearer ${keys.secret}` }, { key: keys.public }, ""],
      [{}, { key: other }, `?key=${keys.public}`],
    ] as const;
    const answers = [];
    for (const [headers, body, query] of refused) {
      const res = await ingest({ ...headers }, { ...body }, query);
      const error = ((await res.json()) as { error: { code: string; message: string } }).error;
      answers.push([res.status, error.code, error.message.endsWith("send one key")]);
    }
    expect(answers).toEqual(refused.map(() => [401, "unauthorized", true]));
    // A key that fails on its own is answered as before, whatever else came with it.
    expect((await ingest({ Authorization: "Bearer sk_unknown", "X-API-Key": keys.public })).status).toBe(401);
    expect((await ingest({ Authorization: `Bearer ${ROOT}`, "X-API-Key": keys.public })).status).toBe(403);
    for (const [headers, body, query] of [
      [{ Authorization: `Bearer ${keys.public}`, "X-API-Key": keys.public }, {}, ""],
      [{ "X-API-Key": keys.public }, { key: keys.public }, `?key=${keys.public}`],
      [{}, { key: keys.public }, `?key=${keys.public}`],
    ] as const) {
      const res = await ingest({ ...headers }, { ...body }, query);
      expect(res.status).toBe(202);
      expect(((await res.json()) as { principal: { type: string } }).principal.type).toBe("public");
    }
  });

  // The bad-input audit of session 35: a secret key in the URL or the body was accepted when the
  // same key came in a header too, though alone there it is refused as leaked.
  test("a secret key copied into the query or the body beside its header is refused as sent elsewhere (403)", async () => {
    for (const [headers, body, query] of [
      [{ "X-API-Key": keys.secret }, {}, `?key=${keys.secret}`],
      [{ Authorization: `Bearer ${keys.secret}` }, {}, `?key=${keys.secret}`],
      [{ "X-API-Key": keys.secret }, { key: keys.secret }, ""],
      [{ Authorization: `Bearer ${keys.secret}`, "X-API-Key": keys.secret }, { key: keys.secret }, ""],
    ] as const) {
      const res = await ingest({ ...headers }, { ...body }, query);
      const error = ((await res.json()) as { error: { code: string; message: string } }).error;
      expect([res.status, error.code, error.message.startsWith("Secret keys are accepted only in the Authorization or X-API-Key header")]).toEqual([403, "forbidden", true]);
    }
    // In the headers only (both of them, or one with an empty body key) it is fine.
    for (const [headers, body] of [[{ Authorization: `Bearer ${keys.secret}`, "X-API-Key": keys.secret }, {}], [{ "X-API-Key": keys.secret }, { key: null }]] as const) {
      expect((await ingest({ ...headers }, { ...body })).status).toBe(202);
    }
  });

  test("an Origin is checked against the key's list; none at all is fine", async () => {
    expect((await ingest({ "X-API-Key": keys.public, Origin: "https://SHOP.example" })).status).toBe(202);
    expect((await ingest({ "X-API-Key": keys.public, Origin: "null" })).status).toBe(403);
    expect((await ingest({ "X-API-Key": keys.public, Origin: "https://shop.example:8443" })).status).toBe(403);
    const { key: noOrigins } = await store.create({ type: "public", serviceId: "shop" });
    expect((await ingest({ "X-API-Key": noOrigins })).status).toBe(202);
    expect((await ingest({ "X-API-Key": noOrigins, Origin: "https://shop.example" })).status).toBe(403);
    const any = await store.create({ type: "public", serviceId: "shop", origins: ["*"] });
    const res = await ingest({ "X-API-Key": any.key, Origin: "https://anywhere.example" });
    expect(res.status).toBe(202);
    expect(res.headers.get("access-control-allow-origin")).toBe("https://anywhere.example");
    // While it is active, every origin passes a key-less preflight; later tests need it gone.
    expect((await preflight("https://anywhere.example")).headers.get("access-control-allow-origin")).toBe("https://anywhere.example");
    await store.revoke(any.record.id);
  });

  test("secret keys are not origin-bound, but never get CORS headers", async () => {
    const res = await ingest({ "X-API-Key": keys.secret, Origin: "https://shop.example" });
    expect(res.status).toBe(202);
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });

  test("a key answered from memory (seen a moment ago) follows the same rules: revoked → 401, wrong place → 403, root → 403", async () => {
    const { record, key } = await store.create({ type: "secret", serviceId: "shop" });
    for (let i = 0; i < 3; i++) expect((await ingest({ "X-API-Key": key })).status).toBe(202);
    expect((await ingest({}, {}, `?key=${key}`)).status).toBe(403); // a secret key in the URL, remembered or not
    await store.revoke(record.id);
    const revoked = await ingest({ "X-API-Key": key });
    expect(revoked.status).toBe(401);
    expect(((await revoked.json()) as { error: { message: string } }).error.message).toBe("Unknown or revoked API key");
    for (let i = 0; i < 3; i++) {
      const root = await ingest({ Authorization: `Bearer ${ROOT}` });
      expect(root.status).toBe(403);
      expect(((await root.json()) as { error: { message: string } }).error.message).toContain("root token");
    }
  });

  test("a key's service is the only one it may write", async () => {
    expect((await ingest({ "X-API-Key": keys.secret }, { service_id: "shop" })).status).toBe(202);
    const res = await ingest({ "X-API-Key": keys.secret }, { service_id: "blog" });
    expect(res.status).toBe(403);
  });
});

describe("adminAuth and assertServiceAccess", () => {
  test("an admin token reads its services; * reads all", async () => {
    const { key: both } = await store.create({ type: "admin", services: ["shop", "blog"] });
    const { key: all } = await store.create({ type: "admin", services: ["*"] });
    const get = (token: string, service: string) => app.request(`/t/query?service_id=${service}`, { headers: { Authorization: `Bearer ${token}` } });
    expect((await get(both, "blog")).status).toBe(200);
    expect((await get(both, "news")).status).toBe(403);
    expect((await get(all, "news")).status).toBe(200);
    const body = (await (await get(both, "shop")).json()) as { principal: unknown };
    expect(body.principal).toMatchObject({ kind: "admin", services: ["shop", "blog"] });
  });

  test("assertServiceAccess refuses the root principal and no principal", () => {
    expect(() => assertServiceAccess({ kind: "root" }, "shop")).toThrow();
    expect(() => assertServiceAccess(undefined, "shop")).toThrow();
  });

  test("rootAuth refuses to be built without a root token (a short one is the operator's call, warned at start)", () => {
    expect(() => rootAuth("")).toThrow();
    expect(() => rootAuth("short")).not.toThrow();
    expect(() => rootAuth(undefined as unknown as string)).toThrow();
  });
});

describe("ingestCors", () => {
  test("preflight with a key: only that key's origins", async () => {
    const ok = await preflight("https://shop.example", `?key=${keys.public}`);
    expect(ok.status).toBe(204);
    expect(ok.headers.get("access-control-allow-origin")).toBe("https://shop.example");
    expect(ok.headers.get("access-control-allow-methods")).toBe("POST");
    expect(ok.headers.get("access-control-allow-headers")).toBe("Content-Type, Authorization, X-API-Key, Content-Encoding, X-Request-Id");
    expect(ok.headers.get("access-control-max-age")).toBe("600");
    expect(ok.headers.get("vary")).toContain("Origin");
    expect(ok.headers.get("access-control-allow-credentials")).toBe("true");

    const { key: other } = await store.create({ type: "public", serviceId: "blog", origins: ["https://blog.example"] });
    // blog.example is listed by some key, but not by the key this preflight names.
    expect((await preflight("https://blog.example", `?key=${keys.public}`)).headers.get("access-control-allow-origin")).toBeNull();
    expect((await preflight("https://blog.example", `?key=${other}`)).headers.get("access-control-allow-origin")).toBe("https://blog.example");
    for (const key of [keys.secret, keys.revoked.public, generateKey("public"), "junk"]) {
      const refused = await preflight("https://shop.example", `?key=${key}`);
      expect(refused.headers.get("access-control-allow-origin")).toBeNull();
      expect(refused.headers.get("access-control-allow-credentials")).toBeNull();
    }
  });

  test("preflight without a key: an origin some active public key lists", async () => {
    const { record } = await store.create({ type: "public", serviceId: "news", origins: ["https://news.example"] });
    expect((await preflight("https://news.example")).headers.get("access-control-allow-origin")).toBe("https://news.example");
    expect((await preflight("https://evil.example")).headers.get("access-control-allow-origin")).toBeNull();
    expect((await preflight(undefined)).headers.get("access-control-allow-origin")).toBeNull();
    await store.revoke(record.id);
    expect((await preflight("https://news.example")).headers.get("access-control-allow-origin")).toBeNull();
  });

  test("actual responses: Vary: Origin always, allow-origin for the key's origins, errors included", async () => {
    const good = await ingest({ "X-API-Key": keys.public, Origin: "https://shop.example" });
    expect(good.headers.get("access-control-allow-origin")).toBe("https://shop.example");
    expect(good.headers.get("access-control-allow-credentials")).toBe("true");
    expect(good.headers.get("access-control-expose-headers")).toContain("X-Request-Id");
    expect(good.headers.get("vary")).toContain("Origin");
    // The route failed after auth: the page may still read why.
    const failed = await ingest({ Origin: "https://shop.example" }, { key: keys.public, fail: true });
    expect(failed.status).toBe(400);
    expect(failed.headers.get("access-control-allow-origin")).toBe("https://shop.example");
    for (const res of [
      await ingest({ Origin: "https://shop.example" }),
      await ingest({ "X-API-Key": keys.public, Origin: "https://evil.example" }),
    ]) {
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.headers.get("access-control-allow-origin")).toBeNull();
      expect(res.headers.get("access-control-allow-credentials")).toBeNull();
      expect(res.headers.get("vary")).toContain("Origin");
      expect(res.headers.get("x-request-id")).toBeString();
    }
  });
});
