import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { buildApp } from "../../src/app.ts";
import { generateRootToken, hashKey } from "../../src/auth/key-format.ts";
import { registerKeyRoutes } from "../../src/auth/key-routes.ts";
import { ClickHouseKeyStore } from "../../src/auth/key-store.ts";
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

beforeAll(async () => {
  ({ ch } = await keysDatabase());
  store = new ClickHouseKeyStore({ client: ch.client });
  await store.start();
  app = buildApp({
    logger: silentLogger,
    metrics: createMetrics(),
    readiness: async () => [],
    routes: [(a) => registerKeyRoutes(a, { store, rootToken: ROOT })],
  });
  keys = await createMatrixKeys({ app, rootToken: ROOT, serviceId: "shop" });
});
afterAll(async () => {
  await store.stop();
  await ch.close();
});

const root = { Authorization: `Bearer ${ROOT}` };
function post(body: unknown, headers: Record<string, string> = root): Promise<Response> {
  return Promise.resolve(app.request("/v1/keys", { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body: typeof body === "string" ? body : JSON.stringify(body) }));
}
async function errorOf(res: Response) {
  return ((await res.json()) as { error: { code: string; message: string; issues?: { path: string; message: string }[] } }).error;
}

describe("key routes: happy paths", () => {
  test("create a public key, list it, revoke it", async () => {
    const res = await post({ type: "public", service_id: "shop", origins: ["HTTPS://Shop.Example:443/", "http://localhost:5173"], name: "web" });
    expect(res.status).toBe(201);
    const created = (await res.json()) as Record<string, unknown> & { id: string; key: string };
    expect(created).toMatchObject({
      type: "public", name: "web", service_id: "shop", services: [],
      origins: ["https://shop.example", "http://localhost:5173"], revoked_at: null,
    });
    expect(created.key).toMatch(/^pk_/);
    expect(created.id).toMatch(/^key_/);
    expect(created.key_prefix).toBe(created.key.slice(0, 8));
    expect(Date.parse(String(created.created_at))).toBeGreaterThan(Date.now() - 60_000);
    expect((await store.verify(created.key))?.id).toBe(created.id);

    const list = await app.request("/v1/keys", { headers: root });
    expect(list.status).toBe(200);
    const text = await list.text();
    expect(text).not.toContain(created.key);
    expect(text).not.toContain(await hashKey(created.key));
    expect(text).not.toContain("hash");
    const listed = (JSON.parse(text) as { data: { id: string; key?: string }[] }).data.find((k) => k.id === created.id);
    expect(listed).toMatchObject({ id: created.id, type: "public", service_id: "shop", key_prefix: created.key_prefix, revoked_at: null });
    expect(listed?.key).toBeUndefined();

    const del = await app.request(`/v1/keys/${created.id}`, { method: "DELETE", headers: root });
    expect(del.status).toBe(204);
    expect(await store.verify(created.key)).toBeNull();
    const after = (await (await app.request("/v1/keys", { headers: root })).json()) as { data: { id: string; revoked_at: string | null }[] };
    expect(after.data.find((k) => k.id === created.id)?.revoked_at).toBeString();
    // Revoking again is no error: the key exists, and it is revoked.
    expect((await app.request(`/v1/keys/${created.id}`, { method: "DELETE", headers: root })).status).toBe(204);
  });

  test("secret and admin keys", async () => {
    const secret = (await (await post({ type: "secret", service_id: "shop" })).json()) as Record<string, unknown>;
    expect(secret).toMatchObject({ type: "secret", service_id: "shop", services: [], origins: [], name: "" });
    expect(String(secret.key)).toMatch(/^sk_/);
    const admin = (await (await post({ type: "admin", services: ["shop", "blog"] })).json()) as Record<string, unknown>;
    expect(admin).toMatchObject({ type: "admin", service_id: null, services: ["shop", "blog"], origins: [] });
    expect(String(admin.key)).toMatch(/^ak_/);
    const all = (await (await post({ type: "admin", services: ["*"] })).json()) as Record<string, unknown>;
    expect(all.services).toEqual(["*"]);
  });
});

describe("key routes: errors", () => {
  test("invalid JSON is 400 invalid_body", async () => {
    const res = await post("{not json");
    expect(res.status).toBe(400);
    expect((await errorOf(res)).code).toBe("invalid_body");
  });

  const cases: [string, unknown, string][] = [
    ["unknown type", { type: "root" }, "type"],
    ["no type", { service_id: "shop" }, "type"],
    ["public without service_id", { type: "public" }, "service_id"],
    ["bad service_id", { type: "secret", service_id: "Shop!" }, "service_id"],
    ["service_id too long", { type: "secret", service_id: "a".repeat(65) }, "service_id"],
    ["origin with a path", { type: "public", service_id: "shop", origins: ["https://shop.example/app"] }, "origins.0"],
    ["origin not http(s)", { type: "public", service_id: "shop", origins: ["chrome-extension://abc"] }, "origins.0"],
    ["admin without services", { type: "admin" }, "services"],
    ["admin with no services", { type: "admin", services: [] }, "services"],
    ["* mixed with ids", { type: "admin", services: ["*", "shop"] }, "services"],
    // The black-box audit of session 20: ["*", "https://a.example"] was taken (the list means any origin).
    ["* mixed with origins", { type: "public", service_id: "shop", origins: ["*", "https://a.example"] }, "origins"],
    ["admin service_id and services naming others", { type: "admin", service_id: "shop", services: ["blog"] }, "service_id"],
    ["name too long", { type: "secret", service_id: "shop", name: "n".repeat(121) }, "name"],
    // ClickHouse refuses a lone surrogate in an insert: it was a 500 (a high one) or a name stored as U+FFFD (a low one).
    ["name with a lone high surrogate", { type: "secret", service_id: "shop", name: "x\ud800" }, "name"],
    ["name with a lone low surrogate", { type: "admin", services: ["shop"], name: "\udc00" }, "name"],
  ];
  // The bad-input audit: `origins` on a secret key was dropped without a word, so an operator could
  // believe the key bound to an origin; the answer now names every field it did not read.
  test("fields of other key types are ignored (API.md shows one body with every field) and named in ignored_fields; an admin token may name one service_id", async () => {
    const secret = await post({ type: "secret", service_id: "shop", origins: ["https://shop.example"], services: ["x"], name: "s" });
    expect(secret.status).toBe(201);
    expect(((await secret.json()) as { origins: string[]; services: string[] })).toMatchObject({ origins: [], services: [], ignored_fields: ["origins", "services"] });
    const admin = await post({ type: "admin", service_id: "shop", origins: [] });
    expect(admin.status).toBe(201);
    expect(((await admin.json()) as { services: string[] })).toMatchObject({ services: ["shop"], ignored_fields: ["origins"] });
    const typo = await post({ type: "public", service_id: "shop", orgins: ["https://shop.example"] });
    expect(((await typo.json()) as object)).toMatchObject({ origins: [], ignored_fields: ["orgins"] });
    // A body with only what the type reads has no ignored_fields at all.
    for (const body of [{ type: "admin", service_id: "shop", services: ["shop"] }, { type: "public", service_id: "shop", origins: ["https://shop.example"], name: "p" }, { type: "secret", service_id: "shop" }]) {
      const res = await post(body);
      expect(res.status).toBe(201);
      expect(Object.keys((await res.json()) as object)).not.toContain("ignored_fields");
    }
  });

  for (const [name, body, path] of cases) {
    test(`${name} → 400 with an issue at ${path}`, async () => {
      const res = await post(body);
      expect(res.status).toBe(400);
      const error = await errorOf(res);
      expect(error.code).toBe("invalid_body");
      expect(error.issues?.map((i) => i.path)).toContain(path);
    });
  }

  test("an origin with a wildcard inside (not * alone) → 400 saying wildcards are not supported", async () => {
    for (const origin of ["https://*.shop.example", "https://shop.*", "*.shop.example"]) {
      const res = await post({ type: "public", service_id: "shop", origins: ["https://ok.example", origin] });
      expect(res.status).toBe(400);
      const error = await errorOf(res);
      expect(error.issues?.[0]).toMatchObject({ path: "origins.1" });
      expect(error.issues?.[0]?.message).toContain("wildcards inside an origin");
    }
    expect((await post({ type: "public", service_id: "shop", origins: ["*"] })).status).toBe(201);
  });

  test("revoking an unknown or malformed id is 404 not_found", async () => {
    for (const id of ["key_0000000000000000", "nope", "key_%27%20OR%201%3D1"]) {
      const res = await app.request(`/v1/keys/${id}`, { method: "DELETE", headers: root });
      expect(res.status).toBe(404);
      expect((await errorOf(res)).code).toBe("not_found");
    }
  });
});

describe("key routes: security", () => {
  runAuthMatrix({
    name: "GET /v1/keys", kind: "root", app: () => app, keys: () => keys,
    request: (headers, opts) => new Request(`http://test/v1/keys?${new URLSearchParams(opts.query)}`, { headers }),
  });
  runAuthMatrix({
    name: "POST /v1/keys", kind: "root", app: () => app, keys: () => keys,
    request: (headers, opts) => new Request(`http://test/v1/keys?${new URLSearchParams(opts.query)}`, {
      method: "POST", headers: { "Content-Type": "application/json", ...headers }, body: JSON.stringify({ type: "secret", service_id: "shop" }),
    }),
  });
  runAuthMatrix({
    name: "DELETE /v1/keys/:id", kind: "root", app: () => app, keys: () => keys,
    request: async (headers, opts) => {
      const { record } = await store.create({ type: "secret", serviceId: "shop" });
      return new Request(`http://test/v1/keys/${record.id}?${new URLSearchParams(opts.query)}`, { method: "DELETE", headers });
    },
  });

  test("a key cannot revoke itself (or anything)", async () => {
    const { record, key } = await store.create({ type: "admin", services: ["*"] });
    const res = await app.request(`/v1/keys/${record.id}`, { method: "DELETE", headers: { Authorization: `Bearer ${key}` } });
    expect(res.status).toBe(403);
    expect(await store.verify(key)).not.toBeNull();
  });
});
