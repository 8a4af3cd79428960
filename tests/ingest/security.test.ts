// Who may ingest what (API.md "Credentials"), on the composed service: the shared auth matrix for
// each of the four ingest routes, revocation across instances after the key-store refresh, the
// fields a public key may not set, keys of one service writing another, origins and CORS.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { generateKey } from "../../src/auth/key-format.ts";
import { createMatrixKeys, expectCredentialsWithOriginOnly, runAuthMatrix, type MatrixKeys } from "../helpers/auth-matrix.ts";
import { testClickHouse } from "../helpers/clickhouse.ts";
import { ROOT_TOKEN, startTestService, type TestService } from "../helpers/service.ts";

const CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
const SHOP_ORIGIN = "https://shop.example";
const ROUTES = ["session", "pageview", "event", "batch"] as const;
type Route = (typeof ROUTES)[number];
const SINGLE_ROUTES = ["session", "pageview", "event"] as const;

let svc: TestService;
let matrixKeys: MatrixKeys;
/** Keys for the tests below the matrix. */
let k: { shopSecret: string; shopPublic: string; blogSecret: string; blogPublic: string; noOrigins: string };

interface ErrorBody {
  error: { code: string; message: string; issues?: unknown[] };
  request_id: string;
}
interface Accepted {
  accepted: number;
  dropped: { index: number; reason: string; message: string }[];
  event_ids: string[];
  session_id?: string;
}

async function createKey(app: TestService["app"], body: Record<string, unknown>): Promise<{ id: string; key: string }> {
  const res = await app.request("/v1/keys", {
    method: "POST",
    headers: { Authorization: `Bearer ${ROOT_TOKEN}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (res.status !== 201) throw new Error(`key creation failed: ${res.status} ${await res.text()}`);
  return (await res.json()) as { id: string; key: string };
}
async function revokeKey(app: TestService["app"], id: string): Promise<void> {
  const res = await app.request(`/v1/keys/${id}`, { method: "DELETE", headers: { Authorization: `Bearer ${ROOT_TOKEN}` } });
  if (res.status !== 204) throw new Error(`revoke failed: ${res.status} ${await res.text()}`);
}

/** A valid item for `route` (a batch of one event), with `extra` fields. */
function bodyFor(route: Route, extra: Record<string, unknown> = {}, bodyKey?: string): Record<string, unknown> {
  const item: Record<string, unknown> =
    route === "event" ? { name: "signup", ...extra }
    : route === "batch" ? { type: "event", name: "signup", ...extra }
    : { url: "https://shop.example/pricing", ...extra };
  const body = route === "batch" ? { items: [item] } : item;
  return bodyKey ? { ...body, key: bodyKey } : body;
}

interface IngestOptions {
  headers?: Record<string, string>;
  query?: string;
  body?: unknown;
}
function ingest(route: Route, opts: IngestOptions = {}): Promise<Response> {
  return Promise.resolve(svc.app.request(`/v1/ingest/${route}${opts.query ?? ""}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "User-Agent": CHROME, ...opts.headers },
    body: JSON.stringify(opts.body ?? bodyFor(route)),
  }));
}

/** Asserts a contract error (status, code, request_id = X-Request-Id) and returns its body. */
async function expectError(res: Response, status: number, code: string): Promise<ErrorBody> {
  const body = (await res.json()) as ErrorBody;
  expect({ status: res.status, code: body.error?.code }).toEqual({ status, code });
  expect(typeof body.error.message).toBe("string");
  expect(body.request_id).toBe(res.headers.get("x-request-id")!);
  expectCredentialsWithOriginOnly(res);
  return body;
}
async function expectAccepted(res: Response, accepted = 1): Promise<Accepted> {
  const text = await res.text();
  if (res.status !== 202) throw new Error(`expected 202, got ${res.status}: ${text}`);
  const body = JSON.parse(text) as Accepted;
  expect(body.accepted).toBe(accepted);
  expectCredentialsWithOriginOnly(res);
  return body;
}

beforeAll(async () => {
  svc = await startTestService();
  matrixKeys = await createMatrixKeys({ app: svc.app, rootToken: ROOT_TOKEN, serviceId: "shop", allowedOrigin: SHOP_ORIGIN });
  const key = async (body: Record<string, unknown>) => (await createKey(svc.app, body)).key;
  k = {
    shopSecret: await key({ type: "secret", service_id: "shop" }),
    shopPublic: await key({ type: "public", service_id: "shop", origins: [SHOP_ORIGIN] }),
    blogSecret: await key({ type: "secret", service_id: "blog" }),
    blogPublic: await key({ type: "public", service_id: "blog", origins: ["https://blog.example"] }),
    noOrigins: await key({ type: "public", service_id: "shop" }),
  };
});
afterAll(async () => {
  await svc?.dispose();
});

// The standard rejections (missing, malformed, unknown, revoked, wrong kind, wrong place, foreign
// origin) and acceptances, the same for every ingest route.
for (const route of ROUTES) {
  runAuthMatrix({
    name: `POST /v1/ingest/${route}`,
    kind: "ingest",
    app: () => svc.app,
    keys: () => matrixKeys,
    request: (headers, opts) => {
      const query = new URLSearchParams(opts.query).toString();
      return new Request(`http://test/v1/ingest/${route}${query ? `?${query}` : ""}`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "User-Agent": CHROME, ...headers },
        body: JSON.stringify(bodyFor(route, {}, opts.bodyKey)),
      });
    },
    accepted: (res) => res.status === 202,
  });
}

describe("revocation", () => {
  test("a key revoked on this instance is refused at once, on every route and in every place", async () => {
    const pub = await createKey(svc.app, { type: "public", service_id: "shop", origins: [SHOP_ORIGIN] });
    const sec = await createKey(svc.app, { type: "secret", service_id: "shop" });
    await expectAccepted(await ingest("event", { headers: { Authorization: `Bearer ${sec.key}` } }));
    await expectAccepted(await ingest("event", { query: `?key=${pub.key}` }));
    await revokeKey(svc.app, pub.id);
    await revokeKey(svc.app, sec.id);
    for (const route of ROUTES) {
      await expectError(await ingest(route, { headers: { Authorization: `Bearer ${sec.key}` } }), 401, "unauthorized");
      await expectError(await ingest(route, { headers: { "X-API-Key": sec.key } }), 401, "unauthorized");
      await expectError(await ingest(route, { headers: { Authorization: `Bearer ${pub.key}`, Origin: SHOP_ORIGIN } }), 401, "unauthorized");
      await expectError(await ingest(route, { query: `?key=${pub.key}` }), 401, "unauthorized");
      await expectError(await ingest(route, { body: bodyFor(route, {}, pub.key) }), 401, "unauthorized");
    }
  });

  test("a key revoked on another instance is refused here once this instance's key store has refreshed (≤ 10 s)", async () => {
    // A second instance on the same database: it shares api_keys, not this instance's key map.
    const other = await startTestService({}, { database: svc.database });
    try {
      // Created elsewhere: not in this instance's map yet, so the first use looks it up by hash.
      const { id, key } = await createKey(other.app, { type: "secret", service_id: "shop" });
      await expectAccepted(await ingest("event", { headers: { Authorization: `Bearer ${key}` } }));

      await revokeKey(other.app, id);
      const revokedAt = Date.now();
      // The refresh runs on its own 5 s timer (ClickHouseKeyStore refreshIntervalMs); it is not
      // exposed, so poll until this instance has reloaded api_keys and sees the revocation.
      let status = 202;
      while (Date.now() - revokedAt < 12_000) {
        const res = await ingest("event", { headers: { Authorization: `Bearer ${key}` } });
        status = res.status;
        if (status !== 202) {
          await expectError(res, 401, "unauthorized");
          break;
        }
        await Bun.sleep(250);
      }
      const elapsed = Date.now() - revokedAt;
      expect(status).toBe(401);
      expect(elapsed).toBeLessThanOrEqual(10_000); // the contract: revoked everywhere within 10 s
      // And it stays revoked, on the instance that revoked it too.
      await expectError(await ingest("batch", { headers: { "X-API-Key": key } }), 401, "unauthorized");
      const otherRes = await other.app.request("/v1/ingest/event", {
        method: "POST",
        headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json", "User-Agent": CHROME },
        body: JSON.stringify({ name: "x" }),
      });
      expect(otherRes.status).toBe(401);
    } finally {
      await other.dispose();
    }
  }, 30_000);
});

describe("a public key cannot set ip, user_agent or timestamp", () => {
  const forbidden = () => ({ ip: "8.8.8.8", user_agent: CHROME, timestamp: Date.now() - 60_000 });

  test("single routes answer 403 forbidden naming the field, for every placement of the key", async () => {
    const placements: { name: string; opts: (route: Route, extra: Record<string, unknown>) => IngestOptions }[] = [
      { name: "Bearer", opts: (route, extra) => ({ headers: { Authorization: `Bearer ${k.shopPublic}` }, body: bodyFor(route, extra) }) },
      { name: "query, from its origin", opts: (route, extra) => ({ query: `?key=${k.shopPublic}`, headers: { Origin: SHOP_ORIGIN }, body: bodyFor(route, extra) }) },
      { name: "body", opts: (route, extra) => ({ body: bodyFor(route, extra, k.shopPublic) }) },
    ];
    for (const route of SINGLE_ROUTES) {
      for (const [field, value] of Object.entries(forbidden())) {
        for (const p of placements) {
          const err = await expectError(await ingest(route, p.opts(route, { [field]: value })), 403, "forbidden");
          expect(err.error.message).toContain(field);
        }
      }
    }
  });

  // The bad-input audit of session 20: {"ip":"bad"} or {"timestamp":null} was a 400 that became a 403 once fixed.
  test("the field alone is forbidden, whatever its value (malformed, null)", async () => {
    for (const [field, value] of [["ip", "bad"], ["timestamp", null], ["user_agent", 42], ["timestamp", "yesterday"]] as const) {
      const err = await expectError(await ingest("event", { headers: { Authorization: `Bearer ${k.shopPublic}` }, body: bodyFor("event", { [field]: value }) }), 403, "forbidden");
      expect(err.error.message).toBe(`${field} can only be set with a secret key`);
    }
  });

  test("in a batch, each such item is dropped with reason forbidden and the clean ones are kept", async () => {
    const ids = Array.from({ length: 5 }, () => crypto.randomUUID());
    const f = forbidden();
    const res = await ingest("batch", {
      headers: { "X-API-Key": k.shopPublic, Origin: SHOP_ORIGIN },
      body: {
        items: [
          { type: "event", name: "clean", event_id: ids[0] },
          { type: "event", name: "ip", event_id: ids[1], ip: f.ip },
          { type: "pageview", url: "https://shop.example/ua", event_id: ids[2], user_agent: f.user_agent },
          { type: "error", message: "ts", event_id: ids[3], timestamp: new Date(f.timestamp).toISOString() },
          { type: "pageview", url: "https://shop.example/clean", event_id: ids[4] },
        ],
      },
    });
    const body = await expectAccepted(res, 2);
    expect(body.dropped.map((d) => [d.index, d.reason])).toEqual([[1, "forbidden"], [2, "forbidden"], [3, "forbidden"]]);
    expect(body.event_ids).toEqual([ids[0]!, ids[4]!]);
    expect(res.headers.get("access-control-allow-origin")).toBe(SHOP_ORIGIN);

    await svc.flush();
    const ch = testClickHouse(svc.database);
    try {
      const rows = await (await ch.client.query({
        query: `SELECT toString(event_id) AS id FROM (SELECT event_id FROM events UNION ALL SELECT event_id FROM page_views UNION ALL SELECT event_id FROM errors) WHERE event_id IN {ids:Array(UUID)} ORDER BY id`,
        query_params: { ids },
        format: "JSONEachRow",
      })).json<{ id: string }>();
      expect(rows.map((r) => r.id)).toEqual([ids[0]!, ids[4]!].sort());
    } finally {
      await ch.close();
    }
  });

  test("a secret key may set all three (the contrast)", async () => {
    for (const route of ROUTES) await expectAccepted(await ingest(route, { headers: { Authorization: `Bearer ${k.shopSecret}` }, body: bodyFor(route, forbidden()) }));
  });
});

describe("a key of one service cannot write another", () => {
  const cases = [
    { name: "shop secret key, service_id blog", headers: () => ({ Authorization: `Bearer ${k.shopSecret}` }), claim: "blog" },
    { name: "shop public key, service_id blog", headers: () => ({ "X-API-Key": k.shopPublic, Origin: SHOP_ORIGIN }), claim: "blog" },
    { name: "blog secret key, service_id shop", headers: () => ({ "X-API-Key": k.blogSecret }), claim: "shop" },
    { name: "blog public key, service_id shop", headers: () => ({ Authorization: `Bearer ${k.blogPublic}` }), claim: "shop" },
  ];

  for (const c of cases) {
    test(`${c.name}: 403 on single routes, dropped as forbidden in a batch`, async () => {
      for (const route of SINGLE_ROUTES) {
        const err = await expectError(await ingest(route, { headers: c.headers(), body: bodyFor(route, { service_id: c.claim }) }), 403, "forbidden");
        expect(err.error.message).toContain(c.claim);
      }
      const res = await ingest("batch", {
        headers: c.headers(),
        body: { items: [{ type: "event", name: "other", service_id: c.claim }, { type: "event", name: "own" }] },
      });
      const body = await expectAccepted(res, 1);
      expect(body.dropped).toMatchObject([{ index: 0, reason: "forbidden" }]);
    });
  }

  test("rows always carry the key's service; a body service_id equal to it is fine", async () => {
    const own = crypto.randomUUID();
    const implied = crypto.randomUUID();
    await expectAccepted(await ingest("event", { headers: { Authorization: `Bearer ${k.blogSecret}` }, body: { name: "own", service_id: "blog", event_id: own } }));
    await expectAccepted(await ingest("batch", { headers: { Authorization: `Bearer ${k.blogSecret}` }, body: { items: [{ type: "event", name: "implied", event_id: implied }] } }));
    await svc.flush();
    const ch = testClickHouse(svc.database);
    try {
      const rows = await (await ch.client.query({
        query: "SELECT toString(event_id) AS id, service_id FROM events WHERE event_id IN {ids:Array(UUID)} ORDER BY id",
        query_params: { ids: [own, implied] },
        format: "JSONEachRow",
      })).json<{ id: string; service_id: string }>();
      expect(rows).toEqual([own, implied].sort().map((id) => ({ id, service_id: "blog" })));
    } finally {
      await ch.close();
    }
  });
});

describe("origins", () => {
  const foreign = ["https://evil.example", "https://shop.example.evil.example", "http://shop.example", "https://shop.example:8443", "null", "https://blog.example"];

  test("a public key with an Origin outside its allow-list is refused (403, no CORS headers), wherever the key is", async () => {
    for (const route of ROUTES) {
      for (const origin of foreign) {
        for (const opts of <IngestOptions[]>[
          { headers: { Authorization: `Bearer ${k.shopPublic}`, Origin: origin } },
          { headers: { Origin: origin }, query: `?key=${k.shopPublic}` },
          { headers: { Origin: origin }, body: bodyFor(route, {}, k.shopPublic) },
        ]) {
          const res = await ingest(route, opts);
          await expectError(res, 403, "forbidden");
          expect(res.headers.get("access-control-allow-origin")).toBeNull();
        }
      }
    }
  });

  test("without an Origin (a server or a tool) a public key is accepted, from the header, the query or the body", async () => {
    for (const route of ROUTES) {
      await expectAccepted(await ingest(route, { headers: { Authorization: `Bearer ${k.shopPublic}` } }));
      await expectAccepted(await ingest(route, { headers: { "X-API-Key": k.shopPublic } }));
      await expectAccepted(await ingest(route, { query: `?key=${k.shopPublic}` }));
      const res = await ingest(route, { body: bodyFor(route, {}, k.shopPublic) });
      await expectAccepted(res);
      expect(res.headers.get("access-control-allow-origin")).toBeNull();
    }
  });

  test("a public key without origins is refused from every browser page and accepted without an Origin", async () => {
    await expectError(await ingest("event", { headers: { Authorization: `Bearer ${k.noOrigins}`, Origin: SHOP_ORIGIN } }), 403, "forbidden");
    await expectAccepted(await ingest("event", { headers: { Authorization: `Bearer ${k.noOrigins}` } }));
  });

  test('a public key with origins ["*"] is accepted from any origin, which gets its own origin back', async () => {
    // Revoked at the end: while it is active, a keyless preflight from any origin may proceed.
    const any = await createKey(svc.app, { type: "public", service_id: "shop", origins: ["*"] });
    try {
      const res = await ingest("pageview", { headers: { Authorization: `Bearer ${any.key}`, Origin: "https://anywhere.example" } });
      await expectAccepted(res);
      expect(res.headers.get("access-control-allow-origin")).toBe("https://anywhere.example");
      expect(res.headers.get("access-control-allow-credentials")).toBe("true");
      const preflight = await svc.app.request("/v1/ingest/event", { method: "OPTIONS", headers: { Origin: "https://anywhere.example", "Access-Control-Request-Method": "POST" } });
      expect(preflight.headers.get("access-control-allow-origin")).toBe("https://anywhere.example");
    } finally {
      await revokeKey(svc.app, any.id);
    }
    const after = await svc.app.request("/v1/ingest/event", { method: "OPTIONS", headers: { Origin: "https://anywhere.example", "Access-Control-Request-Method": "POST" } });
    expect(after.headers.get("access-control-allow-origin")).toBeNull();
  });
});

describe("CORS", () => {
  test("an allowed origin gets Access-Control-Allow-Origin echoed (and Vary: Origin) with Allow-Credentials", async () => {
    for (const route of ROUTES) {
      for (const opts of <IngestOptions[]>[
        { headers: { Authorization: `Bearer ${k.shopPublic}`, Origin: SHOP_ORIGIN } },
        { headers: { Origin: SHOP_ORIGIN, "Content-Type": "text/plain;charset=UTF-8" }, query: `?key=${k.shopPublic}` },
        { headers: { Origin: SHOP_ORIGIN }, body: bodyFor(route, {}, k.shopPublic) },
      ]) {
        const res = await ingest(route, opts);
        await expectAccepted(res);
        expect(res.headers.get("access-control-allow-origin")).toBe(SHOP_ORIGIN);
        expect(res.headers.get("access-control-allow-credentials")).toBe("true");
        expect(res.headers.get("vary") ?? "").toContain("Origin");
        expect(res.headers.get("access-control-expose-headers") ?? "").toContain("X-Request-Id");
      }
    }
  });

  test("the page from an allowed origin can read its own errors (400 after the key was accepted)", async () => {
    const res = await ingest("event", { headers: { Authorization: `Bearer ${k.shopPublic}`, Origin: SHOP_ORIGIN }, body: { name: "" } });
    await expectError(res, 400, "invalid_body");
    expect(res.headers.get("access-control-allow-origin")).toBe(SHOP_ORIGIN);
  });

  test("a disallowed origin gets no Access-Control-Allow-Origin, whatever the outcome", async () => {
    const cases: [string, IngestOptions][] = [
      ["public key, foreign origin", { headers: { Authorization: `Bearer ${k.shopPublic}`, Origin: "https://evil.example" } }],
      ["secret key from a page (accepted; CORS is for public keys only)", { headers: { Authorization: `Bearer ${k.shopSecret}`, Origin: SHOP_ORIGIN } }],
      ["no key", { headers: { Origin: SHOP_ORIGIN } }],
      ["unknown key", { headers: { Authorization: `Bearer ${generateKey("public")}`, Origin: SHOP_ORIGIN } }],
      ["another service's public key from its foreign origin", { headers: { Authorization: `Bearer ${k.blogPublic}`, Origin: SHOP_ORIGIN } }],
    ];
    for (const [name, opts] of cases) {
      const res = await ingest("event", opts);
      expect({ name, acao: res.headers.get("access-control-allow-origin"), acac: res.headers.get("access-control-allow-credentials") }).toEqual({ name, acao: null, acac: null });
      expect(res.status < 500).toBe(true);
    }
  });

  test("preflights: allowed origins only, never credentials", async () => {
    const preflight = (route: Route, origin: string, query = "") =>
      Promise.resolve(svc.app.request(`/v1/ingest/${route}${query}`, {
        method: "OPTIONS",
        headers: { Origin: origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,x-api-key" },
      }));
    for (const route of ROUTES) {
      // Without ?key=, an origin some active public key allows may proceed (the POST is checked again).
      const ok = await preflight(route, SHOP_ORIGIN);
      expect(ok.status).toBe(204);
      expect(ok.headers.get("access-control-allow-origin")).toBe(SHOP_ORIGIN);
      expect(ok.headers.get("access-control-allow-methods")).toBe("POST");
      expect(ok.headers.get("access-control-allow-credentials")).toBe("true");
      const keyed = await preflight(route, SHOP_ORIGIN, `?key=${k.shopPublic}`);
      expect(keyed.headers.get("access-control-allow-origin")).toBe(SHOP_ORIGIN);
      for (const [origin, query] of [
        ["https://evil.example", ""],
        ["https://evil.example", `?key=${k.shopPublic}`],
        ["https://blog.example", `?key=${k.shopPublic}`], // allowed by another key, not by this one
        [SHOP_ORIGIN, `?key=${k.shopSecret}`],
        [SHOP_ORIGIN, `?key=${generateKey("public")}`],
      ] as const) {
        const res = await preflight(route, origin, query);
        expect({ origin, query: query.slice(0, 8), acao: res.headers.get("access-control-allow-origin"), acac: res.headers.get("access-control-allow-credentials") })
          .toEqual({ origin, query: query.slice(0, 8), acao: null, acac: null });
      }
    }
  });
});

describe("a flood of unknown keys", () => {
  test("is refused with the contract's error body (401, or 503 with Retry-After once the look-up budget is spent), and the service recovers", async () => {
    // Distinct well-formed unknown keys each cost a ClickHouse look-up; the key store caps those per
    // second (LookupGuard) and answers 503 `unavailable` beyond the cap. Never a 500, never a 2xx.
    const seen = new Map<string, number>();
    const answers = await Promise.all(Array.from({ length: 60 }, () => ingest("event", { headers: { Authorization: `Bearer ${generateKey("public")}` } })));
    for (const res of answers) {
      const body = (await res.json()) as ErrorBody;
      const tag = `${res.status} ${body.error.code}`;
      seen.set(tag, (seen.get(tag) ?? 0) + 1);
      expect(["401 unauthorized", "503 unavailable"]).toContain(tag);
      expect(body.request_id).toBe(res.headers.get("x-request-id")!);
      if (res.status === 503) expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
    }
    console.log(`unknown-key flood: ${[...seen].map(([t, n]) => `${t} ×${n}`).join(", ")}`);
    // Known keys never need a look-up, so they keep working during the flood.
    await expectAccepted(await ingest("event", { headers: { Authorization: `Bearer ${k.shopSecret}` } }));
    await Bun.sleep(1100);
    await expectError(await ingest("event", { headers: { Authorization: `Bearer ${generateKey("secret")}` } }), 401, "unauthorized");
  });
});
