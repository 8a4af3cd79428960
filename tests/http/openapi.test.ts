// GET /v1/openapi.json against the server itself: a client that trusts the document must not be
// surprised. Bodies and query values the document refuses (where JSON Schema can say so) are the
// ones the server refuses, and what it accepts the server accepts; real answers validate against
// the schema of their status. Validated with Ajv (JSON Schema 2020-12, as OpenAPI 3.1 uses).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { gzipSync } from "node:zlib";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { ERROR_STATUS } from "../../src/errors.ts";
import { ROOT_TOKEN, startTestService, type TestService } from "../helpers/service.ts";

const CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

let svc: TestService;
let secret: string;
let admin: string;
// biome-ignore lint: the document is plain JSON
let doc: any;
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);

/** The document's JSON schema of an operation's request body, response or query parameter. */
const bodySchema = (path: string, method = "post") => doc.paths[path][method].requestBody.content["application/json"].schema;
const responseSchema = (path: string, method: string, status: number) => doc.paths[path][method].responses[String(status)].content["application/json"].schema;
const paramSchema = (path: string, name: string) => doc.paths[path].get.parameters.find((p: { name: string }) => p.name === name).schema;
const valid = (schema: object, value: unknown) => ajv.validate(schema, value);

function post(path: string, body: unknown, key: string): Promise<Response> {
  return Promise.resolve(svc.app.request(path, {
    method: "POST",
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  }));
}

beforeAll(async () => {
  svc = await startTestService();
  secret = await svc.key({ type: "secret", service_id: "doc" });
  admin = await svc.key({ type: "admin", services: ["doc"] });
  const res = await svc.app.request("/v1/openapi.json");
  expect(res.status).toBe(200);
  doc = await res.json();
});
afterAll(() => svc.dispose());

describe("GET /v1/openapi.json", () => {
  test("documents every route of the contract, itself included", () => {
    const routes = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    expect(routes).toEqual(expect.arrayContaining([
      "POST /v1/ingest/session", "POST /v1/ingest/event", "POST /v1/ingest/pageview", "POST /v1/ingest/batch",
      "GET /v1/sessions", "GET /v1/sessions/stats", "GET /v1/events", "GET /v1/funnels/{name}", "GET /v1/behavior/summary",
      "POST /v1/keys", "GET /v1/keys", "DELETE /v1/keys/{id}", "GET /healthz", "GET /readyz", "GET /metrics", "GET /v1/openapi.json",
    ]));
  });

  // An OpenAPI audit: HEAD and the ingest routes' preflight were answered but not documented.
  test("HEAD beside every GET and OPTIONS on every ingest route are listed, and answer as listed", async () => {
    const paths = doc.paths as Record<string, Record<string, { responses: Record<string, { content?: unknown }> }>>;
    const gets = Object.keys(paths).filter((p) => paths[p]!.get);
    expect(gets.filter((p) => !paths[p]!.head)).toEqual([]);
    expect(gets.flatMap((p) => Object.entries(paths[p]!.head!.responses).filter(([, r]) => r.content).map(([status]) => `${p} ${status}`))).toEqual([]);
    const ingest = Object.keys(paths).filter((p) => p.startsWith("/v1/ingest/"));
    expect(ingest.sort()).toEqual(["/v1/ingest/batch", "/v1/ingest/event", "/v1/ingest/pageview", "/v1/ingest/session"]);
    expect(ingest.filter((p) => !paths[p]!.options?.responses["204"])).toEqual([]);
    const head = await svc.app.request("/v1/sessions?service_id=doc", { method: "HEAD", headers: { Authorization: `Bearer ${admin}` } });
    expect([head.status, await head.text()]).toEqual([200, ""]);
    expect(head.headers.get("x-request-id")).toBeTruthy();
    const preflight = await svc.app.request("/v1/ingest/event", { method: "OPTIONS", headers: { Origin: "https://nowhere.example" } });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBeNull(); // no public key allows it
  });

  test("operations routes take no credential: their answers list no 401, 403 or 429", () => {
    for (const path of ["/healthz", "/readyz", "/metrics"]) {
      const statuses = Object.keys(doc.paths[path].get.responses).sort();
      expect({ path, statuses }).toEqual({ path, statuses: path === "/readyz" ? ["200", "400", "405", "431", "500", "503"] : ["200", "400", "405", "431", "500"] });
    }
    expect(Object.keys(doc.paths["/v1/sessions"].get.responses)).toEqual(expect.arrayContaining(["401", "403", "429"]));
  });

  // OpenAPI audit (session 26): a 204, /metrics and the document's own route lacked these. A later
  // one: Bun's bare 431 (headers over 64 KiB) was not declared, nor the X-Request-Id request header,
  // and the answer's X-Request-Id was not marked required.
  test("every answer of every operation declares X-Request-Id (required) but Bun's bare 431, every route 405 and 431 and reads X-Request-Id, every 503 and 429 Retry-After", () => {
    const missing: string[] = [];
    type Op = { parameters?: Array<{ name: string; in: string }>; responses: Record<string, { headers?: Record<string, { required?: boolean }>; content?: unknown }> };
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, Op>>)) {
      for (const [method, op] of Object.entries(ops)) {
        if (!op.responses["405"] && method !== "options") missing.push(`${method} ${path} 405`); // a preflight is never a wrong method
        if (!op.responses["431"] || op.responses["431"].headers || op.responses["431"].content) missing.push(`${method} ${path} bare 431`);
        if (!op.parameters?.some((p) => p.in === "header" && p.name === "X-Request-Id")) missing.push(`${method} ${path} X-Request-Id parameter`);
        for (const [status, response] of Object.entries(op.responses)) {
          if (status === "431") continue;
          if (response.headers?.["X-Request-Id"]?.required !== true) missing.push(`${method} ${path} ${status} X-Request-Id`);
          if ((status === "503" || status === "429") && !response.headers?.["Retry-After"]) missing.push(`${method} ${path} ${status} Retry-After`);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  test("ingest routes describe Content-Encoding (gzip, its alias x-gzip, identity); key answers name the three types", () => {
    for (const route of ["session", "event", "pageview", "batch"]) {
      const encoding = doc.paths[`/v1/ingest/${route}`].post.parameters.find((p: { name: string }) => p.name === "Content-Encoding");
      expect({ route, in: encoding?.in, example: encoding?.example, names: encoding?.description.startsWith("One of gzip, x-gzip, identity,") }).toEqual({ route, in: "header", example: "gzip", names: true });
    }
    expect(responseSchema("/v1/keys", "get", 200).properties.data.items.properties.type.enum).toEqual(["public", "secret", "admin"]);
  });

  test("Content-Encoding: what the document's pattern allows is accepted (any case, blank, empty), what it refuses is 415", async () => {
    const schema = doc.paths["/v1/ingest/event"].post.parameters.find((p: { name: string }) => p.name === "Content-Encoding").schema;
    const values = ["gzip", "x-gzip", "identity", "GZIP", "X-Gzip", "Identity", " gzip ", "\tgzip", "", "br", "deflate", "gzip, br", "gzip2", "xgzip", "x_gzip", "ident", "*"];
    const seen: Record<string, { documented: boolean; status: number }> = {};
    for (const encoding of values) {
      const json = JSON.stringify({ name: `enc-${encoding}`, user_agent: CHROME, ip: "9.9.9.9" });
      const plain = encoding.trim() === "" || encoding.trim().toLowerCase() === "identity";
      const res = await svc.app.request("/v1/ingest/event", {
        method: "POST",
        headers: { Authorization: `Bearer ${secret}`, "Content-Type": "application/json", "Content-Encoding": encoding },
        body: plain ? json : gzipSync(json),
      });
      seen[JSON.stringify(encoding)] = { documented: valid(schema, encoding), status: res.status };
    }
    const expected = Object.fromEntries(values.map((e, i) => [JSON.stringify(e), { documented: i < 9, status: i < 9 ? 202 : 415 }]));
    expect(seen).toEqual(expected);
  });

  test("each error status names its codes, and every code of the API is named", () => {
    const named = new Set<string>();
    for (const ops of Object.values(doc.paths as Record<string, Record<string, { responses: Record<string, any> }>>)) {
      for (const op of Object.values(ops)) {
        for (const [status, response] of Object.entries(op.responses)) {
          const codes: string[] | undefined = response.content?.["application/json"]?.schema?.properties?.error?.properties?.code?.enum;
          if (!codes) continue;
          for (const code of codes) {
            expect(`${code} ${ERROR_STATUS[code as keyof typeof ERROR_STATUS]}`).toBe(`${code} ${status}`);
            named.add(code);
          }
        }
      }
    }
    expect([...named].sort()).toEqual(Object.keys(ERROR_STATUS).sort());
  });

  test("batch items: what the document refuses the server drops as invalid, what it accepts is accepted", async () => {
    const itemSchema = bodySchema("/v1/ingest/batch").properties.items.items;
    const base = { ip: "203.0.113.9", user_agent: CHROME };
    const cases: Array<{ item: Record<string, unknown>; ok: boolean }> = [
      { item: { type: "funnel", step: 1 }, ok: false }, // no funnel name
      { item: { type: "funnel", funnel: "checkout", step: 1 }, ok: true },
      { item: { type: "funnel", name: "checkout", step: 2 }, ok: true }, // `name` stands in for `funnel`
      { item: { type: "vitals", url: "https://doc.example/" }, ok: false }, // no metric
      { item: { type: "vitals", url: "https://doc.example/", cls: 0.05 }, ok: true },
      { item: { type: "pageview", url: "https://" }, ok: false }, // no host
      { item: { type: "pageview", url: "https://doc.example/a" }, ok: true },
      // Read as a browser reads them (WHATWG URL), not as RFC 3986 `format: uri` would (an audit).
      { item: { type: "pageview", url: "https://doc.example/ü a" }, ok: true },
      { item: { type: "pageview", url: "https://münchen.example/" }, ok: true },
      { item: { type: "event", name: "" }, ok: false },
      { item: { type: "event", name: "signup", conversion: true }, ok: true },
      { item: { type: "event", name: "timed", timestamp: new Date(Date.now() - 3_600_000).toISOString() }, ok: true },
      { item: { type: "event", name: "timed", timestamp: `${new Date(Date.now() - 86_400_000).toISOString().slice(0, 10)}T25:00:00Z` }, ok: false },
    ];
    const items = cases.map((c) => ({ ...base, ...c.item }));
    const res = await post("/v1/ingest/batch", { items }, secret);
    expect(res.status).toBe(202);
    const body = (await res.json()) as { accepted: number; dropped: Array<{ index: number; reason: string }> };
    expect(valid(responseSchema("/v1/ingest/batch", "post", 202), body)).toBe(true);
    const dropped = new Map(body.dropped.map((d) => [d.index, d.reason]));
    const outcome = items.map((item, i) => ({ item: cases[i]!.item, document: valid(itemSchema, item), server: !dropped.has(i) }));
    expect(outcome).toEqual(cases.map((c) => ({ item: c.item, document: c.ok, server: c.ok })));
    expect([...dropped.values()].every((r) => r === "invalid")).toBe(true);
  });

  test("a 202 with every drop reason validates: bot, duplicate, invalid", async () => {
    const eventId = crypto.randomUUID();
    const items = [
      { type: "event", name: "a", event_id: eventId, ip: "203.0.113.10", user_agent: CHROME },
      { type: "event", name: "a", event_id: eventId, ip: "203.0.113.10", user_agent: CHROME },
      { type: "event", name: "b", ip: "203.0.113.11", user_agent: "Googlebot/2.1 (+http://www.google.com/bot.html)" },
      { type: "event", ip: "203.0.113.12", user_agent: CHROME },
    ];
    const res = await post("/v1/ingest/batch", { items }, secret);
    const body = (await res.json()) as { dropped: Array<{ reason: string }> };
    expect(body.dropped.map((d) => d.reason)).toEqual(["duplicate", "bot", "invalid"]);
    expect(valid(responseSchema("/v1/ingest/batch", "post", 202), body)).toBe(true);
    // A reason the document does not name would fail the same schema.
    expect(valid(responseSchema("/v1/ingest/batch", "post", 202), { ...body, dropped: [{ index: 0, reason: "other", message: "x" }] })).toBe(false);
  });

  test("POST /v1/keys: the document refuses what the server refuses", async () => {
    const schema = bodySchema("/v1/keys");
    const cases: Array<{ body: Record<string, unknown>; ok: boolean }> = [
      { body: { type: "admin" }, ok: false },
      { body: { type: "admin", services: ["*", "doc"] }, ok: false },
      { body: { type: "public", service_id: "doc", origins: ["not a url"] }, ok: false },
      { body: { type: "public", service_id: "doc", origins: ["*", "https://doc.example"] }, ok: false },
      { body: { type: "admin", service_id: "doc" }, ok: true },
      { body: { type: "admin", services: ["*"] }, ok: true },
      { body: { type: "public", service_id: "doc", origins: ["https://doc.example", "http://localhost:8080"] }, ok: true },
      { body: { type: "public", service_id: "doc", origins: ["http://[::1]:3000", "https://münchen.example", "https://doc.example:65535/"] }, ok: true },
      { body: { type: "public", service_id: "doc", origins: ["https://doc.example:99999"] }, ok: false },
      { body: { type: "public", service_id: "doc", origins: ["https://a b.example"] }, ok: false },
      { body: { type: "public", service_id: "doc", origins: ["https://user@doc.example"] }, ok: false },
    ];
    const outcome = [];
    for (const c of cases) {
      const res = await post("/v1/keys", c.body, ROOT_TOKEN);
      outcome.push({ body: c.body, document: valid(schema, c.body), server: res.status === 201 });
      if (res.status !== 201) expect(valid(responseSchema("/v1/keys", "post", res.status), await res.json())).toBe(true);
    }
    expect(outcome).toEqual(cases.map((c) => ({ body: c.body, document: c.ok, server: c.ok })));
  });

  test("query values: limits and times the document refuses the server refuses (400 invalid_query)", async () => {
    const cases: Array<{ name: string; value: string; ok: boolean }> = [
      { name: "limit", value: "0", ok: false },
      { name: "limit", value: "1001", ok: false },
      { name: "limit", value: "1000", ok: true },
      { name: "from", value: "yesterday", ok: false },
      { name: "from", value: "2026-11-01", ok: true },
      { name: "from", value: "2026-11-01T00:00:00+01:00", ok: true },
      { name: "from", value: String(Date.now() - 86_400_000), ok: true },
      // An audit: the document's patterns took clock and calendar fields out of range.
      { name: "from", value: "2026-13-01", ok: false },
      { name: "from", value: "2026-11-01T25:00:00Z", ok: false },
      { name: "from", value: "2026-11-01T10:00:00+99:00", ok: false },
      { name: "from", value: "2026-11-01T10:00:00+23:59", ok: true },
      { name: "from", value: "2026-11-01T23:59:60Z", ok: false },
      { name: "from", value: "2026-11-01T24:00Z", ok: true }, // the day's end, as Date.parse reads it
      { name: "from", value: "2026-11-01T24:00:01Z", ok: false },
      { name: "from", value: "1900-01-01", ok: false },
      { name: "from", value: "2200-01-01T00:00:00Z", ok: false },
      { name: "to", value: "2026-11-30", ok: true },
    ];
    const outcome = [];
    for (const c of cases) {
      const schema = paramSchema("/v1/sessions", c.name);
      // Query values arrive as text; the document states numbers as integers.
      const asDocumented = schema.type === "integer" ? Number(c.value) : c.value;
      const res = await svc.app.request(`/v1/sessions?service_id=doc&${c.name}=${encodeURIComponent(c.value)}`, { headers: { Authorization: `Bearer ${admin}` } });
      const answer = await res.json();
      expect(valid(responseSchema("/v1/sessions", "get", res.status), answer)).toBe(true);
      outcome.push({ ...c, document: valid(schema, asDocumented), server: res.status === 200 });
    }
    expect(outcome).toEqual(cases.map((c) => ({ ...c, document: c.ok, server: c.ok })));
    // The summary's one-day `date` likewise: only 1970–2199 and months 01–12.
    const dateSchema = doc.paths["/v1/behavior/summary"].get.parameters.find((p: { name: string }) => p.name === "date").schema;
    const dates = ["2026-11-01", "1900-01-01", "2026-13-01", "9999-12-31"].map((date) => ({ date, document: valid(dateSchema, date) }));
    for (const d of dates) {
      const res = await svc.app.request(`/v1/behavior/summary?service_id=doc&date=${d.date}`, { headers: { Authorization: `Bearer ${admin}` } });
      expect({ ...d, server: res.status === 200 }).toEqual({ ...d, server: d.document });
    }
    expect(dates.map((d) => d.document)).toEqual([true, false, false, false]);
  }, 30_000); // ~20 reads: 1.4 s here, over 5 s in a clean-clone CI run

  // An audit: `limit` and `window` were integers with a `pattern`, which means nothing on a number.
  test("every schema of the document compiles in Ajv's strict mode (keywords only where their type has them)", () => {
    const strictAjv = new Ajv2020({ strict: true, strictRequired: false, allErrors: true });
    addFormats(strictAjv);
    const problems: string[] = [];
    type Content = Record<string, { schema: object }>;
    type Op = { parameters?: Array<{ name: string; schema: object }>; requestBody?: { content: Content }; responses: Record<string, { content?: Content }> };
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, Op>>)) {
      for (const [method, op] of Object.entries(ops)) {
        const schemas: Array<[string, object]> = [
          ...(op.parameters ?? []).map((p): [string, object] => [`parameter ${p.name}`, p.schema]),
          ...Object.entries(op.requestBody?.content ?? {}).map(([type, c]): [string, object] => [`body ${type}`, c.schema]),
          ...Object.entries(op.responses).flatMap(([status, r]) => Object.values(r.content ?? {}).map((c): [string, object] => [`answer ${status}`, c.schema])),
        ];
        for (const [what, schema] of schemas) {
          try {
            strictAjv.compile(schema);
          } catch (error) {
            problems.push(`${method} ${path} ${what}: ${(error as Error).message}`);
          }
        }
      }
    }
    expect(problems).toEqual([]);
  }, 30_000);

  test("error answers validate against their status's schema, and a wrong code would not", async () => {
    const unauthorized = await svc.app.request("/v1/sessions?service_id=doc");
    expect(unauthorized.status).toBe(401);
    const body = await unauthorized.json();
    const schema = responseSchema("/v1/sessions", "get", 401);
    expect(valid(schema, body)).toBe(true);
    expect(valid(schema, { ...body, error: { ...body.error, code: "forbidden" } })).toBe(false);
    const ready = await svc.app.request("/readyz");
    expect(valid(responseSchema("/readyz", "get", ready.status), await ready.json())).toBe(true);
  });
});
