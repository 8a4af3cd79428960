// The query routes over HTTP: contract shapes (same numbers as the query functions), the shared
// auth matrix for every route, and the OpenAPI document.
import { crc32 } from "node:zlib";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { memoryCache } from "../../src/cache/memory-cache.ts";
import { funnelReport } from "../../src/query/funnel.ts";
import { behaviorSummary, sessionStatsReport } from "../../src/query/reports.ts";
import { resolveRange } from "../../src/query/time-range.ts";
import { runAuthMatrix } from "../helpers/auth-matrix.ts";
import { type Dataset, loadDataset } from "./fixtures/dataset.ts";
import { type QueryApp, queryApp } from "./fixtures/query-app.ts";

const NOW = Date.UTC(2026, 3, 3, 12);
let data: Dataset;
let q: QueryApp;
beforeAll(async () => {
  data = await loadDataset(40);
  q = await queryApp(data.db, memoryCache(), NOW);
}, 60_000);
afterAll(async () => {
  await q.stop();
  await data.db.close();
});

const get = (path: string, token = q.adminAll) => q.app.request(path, { headers: { Authorization: `Bearer ${token}` } });
const ROUTES = [
  "/v1/sessions?service_id=alpha",
  "/v1/sessions/stats?service_id=alpha",
  "/v1/events?service_id=alpha",
  "/v1/funnels/signup?service_id=alpha",
  "/v1/behavior/summary?service_id=alpha",
];

for (const path of ROUTES) {
  runAuthMatrix({
    name: `GET ${path.split("?")[0]}`,
    kind: "admin",
    app: () => q.app,
    keys: () => q.keys,
    request: (headers, opts) => new Request(`http://x${path}&${new URLSearchParams(opts.query)}`, { headers }),
  });
}

describe("contract shapes", () => {
  const range = () => resolveRange({ from: "2026-03-29", to: "2026-03-29", tz: "Europe/Berlin" }, NOW);

  test("GET /v1/sessions/stats answers the report of the query functions", async () => {
    const res = await get("/v1/sessions/stats?service_id=alpha&from=2026-03-29&to=2026-03-29&tz=Europe%2FBerlin&interval=hour");
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body).toEqual(JSON.parse(JSON.stringify(await sessionStatsReport(data.db.client, { serviceId: "alpha", range: range(), filters: {} }, "hour", { now: NOW, forceRaw: true }))));
    expect(body.series).toHaveLength(23);
    expect(Object.keys(body.totals).sort()).toEqual(["avg_duration_s", "bounce_rate", "bounces", "conversions", "pages_per_session", "pageviews", "sessions", "visitors"]);
  });

  test("GET /v1/behavior/summary with date= is that one local day", async () => {
    const res = await get("/v1/behavior/summary?service_id=alpha&date=2026-03-29&tz=Europe/Berlin&limit=5&country=DE");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual(
      JSON.parse(JSON.stringify(await behaviorSummary(data.db.client, { serviceId: "alpha", range: range(), filters: { country: "DE" }, limit: 5 }, { now: NOW }))),
    );
  });

  test("GET /v1/funnels/:name passes window and by", async () => {
    const res = await get("/v1/funnels/signup?service_id=alpha&from=2026-03-05&to=2026-04-01&window=600&by=visitor");
    expect(res.status).toBe(200);
    const want = await funnelReport(data.db.client, { serviceId: "alpha", funnel: "signup", range: resolveRange({ from: "2026-03-05", to: "2026-04-01", tz: "UTC" }, NOW), filters: {}, windowSeconds: 600, by: "visitor" }, { now: NOW });
    expect(await res.json()).toEqual(JSON.parse(JSON.stringify(want)));
  });

  test("GET /v1/sessions and /v1/events page with next_cursor", async () => {
    const all = await (await get("/v1/sessions?service_id=alpha&from=2026-03-05&to=2026-04-01&limit=1000")).json();
    const first = await (await get("/v1/sessions?service_id=alpha&from=2026-03-05&to=2026-04-01&limit=3")).json();
    expect(first.data.map((s: { session_id: string }) => s.session_id)).toEqual(all.data.slice(0, 3).map((s: { session_id: string }) => s.session_id));
    const second = await (await get(`/v1/sessions?service_id=alpha&from=2026-03-05&to=2026-04-01&limit=3&cursor=${first.next_cursor}`)).json();
    expect(second.data[0].session_id).toBe(all.data[3].session_id);
    expect(all.next_cursor).toBeNull();
    const events = await (await get("/v1/events?service_id=alpha&from=2026-03-05&to=2026-04-01&limit=1&name=click")).json();
    expect(events.data).toHaveLength(1);
    expect(typeof events.next_cursor).toBe("string");
    const nextEvents = await (await get(`/v1/events?service_id=alpha&from=2026-03-05&to=2026-04-01&limit=1&name=click&cursor=${events.next_cursor}`)).json();
    expect(nextEvents.data).toHaveLength(1);
    expect(nextEvents.data[0].event_id).not.toBe(events.data[0].event_id);
    // The bad-input audit: a cursor of one list paged the other from its time, and cursors holding
    // no real row (a time past any date, a lone surrogate, an id no event has) were answered 200.
    const cross = [
      `/v1/events?service_id=alpha&from=2026-03-05&to=2026-04-01&cursor=${first.next_cursor}`,
      `/v1/sessions?service_id=alpha&from=2026-03-05&to=2026-04-01&cursor=${events.next_cursor}`,
    ];
    const forged = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
    const [, t, sid, w, marks, prefixes] = JSON.parse(Buffer.from(first.next_cursor, "base64url").toString()) as [string, number, string, number, number[], number[]];
    // The next page's first window rides along (src/query/newest-first.ts); a cursor without it
    // (made before it existed) pages the same rows. So do the walk's pages (src/query/session-list.ts):
    // this one's read time (the engine's clock), last start and CRC-32 of its last id.
    expect(Number.isSafeInteger(w) && w >= 1000).toBe(true);
    expect(marks.length).toBe(3);
    expect(Math.abs(marks[0]! - Date.now())).toBeLessThan(60_000);
    expect(marks.slice(1)).toEqual([t, crc32(sid)]);
    // And its last id's first four bytes as a number (ties at one start are told apart by them).
    expect(prefixes).toEqual([Buffer.concat([Buffer.from(sid), Buffer.alloc(4)]).readUInt32BE(0)]);
    const withoutPrefixes = await (await get(`/v1/sessions?service_id=alpha&from=2026-03-05&to=2026-04-01&limit=3&cursor=${forged(["s", t, sid, w, marks])}`)).json();
    expect(withoutPrefixes.data).toEqual(second.data); // a cursor made before they were kept
    // Past 64 pages, older ones are stored under a walk id (seventh element); one whose pages are
    // not stored (an edited cursor, or a day later) pages the same rows.
    const withWalk = await (await get(`/v1/sessions?service_id=alpha&from=2026-03-05&to=2026-04-01&limit=3&cursor=${forged(["s", t, sid, w, marks, prefixes, [crypto.randomUUID(), 3]])}`)).json();
    expect(withWalk.data).toEqual(second.data);
    const withoutHint = await (await get(`/v1/sessions?service_id=alpha&from=2026-03-05&to=2026-04-01&limit=3&cursor=${forged(["s", t, sid])}`)).json();
    expect(withoutHint.data).toEqual(second.data);
    const withoutPages = await (await get(`/v1/sessions?service_id=alpha&from=2026-03-05&to=2026-04-01&limit=3&cursor=${forged(["s", t, sid, w])}`)).json();
    expect(withoutPages.data).toEqual(second.data);
    // Each next page adds its own mark to the walk's (as deltas: a later read, an earlier end).
    const next = await (await get(`/v1/sessions?service_id=alpha&from=2026-03-05&to=2026-04-01&limit=1&cursor=${first.next_cursor}`)).json();
    const nextMarks = JSON.parse(Buffer.from(next.next_cursor, "base64url").toString())[4] as number[];
    expect(nextMarks.slice(0, 3)).toEqual(marks);
    expect(nextMarks.length).toBe(6);
    expect(nextMarks[3]! >= 0 && nextMarks[4]! >= 0 && nextMarks[5] === crc32(next.data[0].session_id)).toBe(true);
    // A page read "before" the last one (a clock set back) still gives a cursor the service takes:
    // its read time is kept at the last one's.
    const ahead = forged(["s", t, sid, w, [marks[0]! + 3_600_000, t, marks[2]!]]);
    const afterAhead = await (await get(`/v1/sessions?service_id=alpha&from=2026-03-05&to=2026-04-01&limit=1&cursor=${ahead}`)).json();
    expect(JSON.parse(Buffer.from(afterAhead.next_cursor, "base64url").toString())[4].slice(3, 4)).toEqual([0]);
    expect((await get(`/v1/sessions?service_id=alpha&from=2026-03-05&to=2026-04-01&limit=1&cursor=${afterAhead.next_cursor}`)).status).toBe(200);
    const bad = [
      `/v1/sessions?service_id=alpha&cursor=${forged([t, sid])}`, // the old two-element form
      `/v1/sessions?service_id=alpha&cursor=${forged(["s", t, sid, 999])}`, // a first window under 1 s
      `/v1/sessions?service_id=alpha&cursor=${forged(["s", t, sid, 1500.5])}`,
      `/v1/sessions?service_id=alpha&cursor=${forged(["s", t, sid, String(w)])}`,
      `/v1/sessions?service_id=alpha&cursor=${forged(["s", t, sid, 8640000000000001])}`,
      `/v1/sessions?service_id=alpha&cursor=${forged(["s", t, sid, w, w])}`, // marks are a list
      `/v1/sessions?service_id=alpha&cursor=${forged(["s", t, sid, w, [1, 2]])}`, // of threes
      `/v1/sessions?service_id=alpha&cursor=${forged(["s", t, sid, w, [1, 2, -3]])}`,
      `/v1/sessions?service_id=alpha&cursor=${forged(["s", t, sid, w, [1, 2, 2 ** 32]])}`,
      `/v1/sessions?service_id=alpha&cursor=${forged(["s", t, sid, w, [1, 2, 3, 0, 5, 0]])}`, // an end before 0
      `/v1/sessions?service_id=alpha&cursor=${forged(["s", t, sid, w, Array.from({ length: 65 }, () => [0, 0, 0]).flat()])}`, // 65 pages
      `/v1/sessions?service_id=alpha&cursor=${forged(["s", t, sid, w, marks, 1])}`, // prefixes are a list
      `/v1/sessions?service_id=alpha&cursor=${forged(["s", t, sid, w, marks, [1, 2]])}`, // one per page
      `/v1/sessions?service_id=alpha&cursor=${forged(["s", t, sid, w, marks, [-1]])}`,
      `/v1/sessions?service_id=alpha&cursor=${forged(["s", t, sid, w, marks, [2 ** 32]])}`,
      `/v1/sessions?service_id=alpha&cursor=${forged(["s", t, sid, w, marks, prefixes, 0])}`, // a walk is [id, pages stored]
      `/v1/sessions?service_id=alpha&cursor=${forged(["s", t, sid, w, marks, prefixes, ["not-a-uuid", 3]])}`,
      `/v1/sessions?service_id=alpha&cursor=${forged(["s", t, sid, w, marks, prefixes, [crypto.randomUUID(), 0]])}`,
      `/v1/sessions?service_id=alpha&cursor=${forged(["s", t, sid, w, marks, prefixes, [crypto.randomUUID(), 1.5]])}`,
      `/v1/sessions?service_id=alpha&cursor=${forged(["s", t, sid, w, marks, prefixes, [crypto.randomUUID(), 3], 0])}`,
      `/v1/events?service_id=alpha&cursor=${forged(["e", t, crypto.randomUUID(), w, marks])}`, // events do not move
      `/v1/sessions?service_id=alpha&cursor=${forged(["s", 8640000000000001, sid])}`,
      `/v1/sessions?service_id=alpha&cursor=${forged(["s", -1, sid])}`,
      `/v1/sessions?service_id=alpha&cursor=${forged(["s", t, "\ud800"])}`,
      `/v1/sessions?service_id=alpha&cursor=${forged(["s", t, "x".repeat(65)])}`,
      `/v1/events?service_id=alpha&cursor=${forged(["e", t, "not-a-uuid"])}`,
      // A lone surrogate as raw bytes (not a JSON escape): decoding made it U+FFFD, an id it never was.
      `/v1/sessions?service_id=alpha&cursor=${Buffer.concat([Buffer.from(`["s",${t},"`), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"]')]).toString("base64url")}`,
    ];
    for (const path of [...cross, ...bad]) {
      const res = await get(path);
      const body = (await res.json()) as { error: { code: string; issues: Array<{ path: string }> } };
      expect([path, res.status, body.error.code, body.error.issues[0]!.path]).toEqual([path, 400, "invalid_query", "cursor"]);
    }
  });

  // The re-audit: HEAD answered Content-Length: 0, which RFC 9110 (8.6) allows only for an empty GET body.
  // A 404 or 405 answered HEAD with the length of a body naming HEAD, one byte more than the GET's.
  test("HEAD on a query route answers the GET's headers with the GET body's Content-Length and no body; so do its 404s and 405s", async () => {
    for (const path of ["/v1/sessions/stats?service_id=alpha&from=2026-03-05&to=2026-04-01", "/v1/sessions?service_id=alpha&from=2026-03-05&to=2026-04-01&limit=2", "/v1/sessions?service_id=alpha&limit=0", "/v1/no-such-route", "/v1/ingest/event"]) {
      const full = await q.app.request(`http://x${path}`, { headers: { Authorization: `Bearer ${q.adminAll}` } });
      const body = await full.arrayBuffer();
      const head = await q.app.request(`http://x${path}`, { method: "HEAD", headers: { Authorization: `Bearer ${q.adminAll}` } });
      expect([path, head.status, head.headers.get("content-length")]).toEqual([path, full.status, String(body.byteLength)]);
      expect(head.headers.get("content-type")).toBe(full.headers.get("content-type"));
      expect((await head.arrayBuffer()).byteLength).toBe(0);
    }
  });

  test("a path filter is read as ingest stores paths (percent-encoded; a trailing slash is another page)", async () => {
    const summary = (filters: { path: string }) => behaviorSummary(data.db.client, { serviceId: "alpha", range: range(), filters, limit: 5 }, { now: NOW, forceRaw: true });
    const res = await get("/v1/behavior/summary?service_id=alpha&date=2026-03-29&tz=Europe/Berlin&limit=5&path=%2Fpricing");
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body).toEqual(JSON.parse(JSON.stringify(await summary({ path: "/pricing" }))));
    expect(body.top_pages.map((p: { path: string }) => p.path)).toEqual(["/pricing"]);
    const slash = await (await get("/v1/behavior/summary?service_id=alpha&date=2026-03-29&tz=Europe/Berlin&limit=5&path=%2Fpricing%2F")).json();
    expect(slash.top_pages).toEqual([]);
    const unicode = await get(`/v1/behavior/summary?service_id=alpha&date=2026-03-29&tz=Europe/Berlin&limit=5&path=${encodeURIComponent("/ünï")}`);
    // The fixture's rows hold the path unencoded ("/ünï"), which ingest never stores: the filter,
    // read as ingest stores paths, must not find them.
    expect((await summary({ path: "/ünï" })).top_pages.length).toBeGreaterThan(0);
    expect(await unicode.json()).toEqual(JSON.parse(JSON.stringify(await summary({ path: "/%C3%BCn%C3%AF" }))));
  });

  test("cached routes say X-Cache; lists do not", async () => {
    expect((await get("/v1/behavior/summary?service_id=beta&date=2026-03-20")).headers.get("x-cache")).toBe("MISS");
    expect((await get("/v1/behavior/summary?service_id=beta&date=2026-03-20")).headers.get("x-cache")).toBe("HIT");
    expect((await get("/v1/sessions?service_id=beta")).headers.get("x-cache")).toBeNull();
  });
});

describe("GET /v1/openapi.json", () => {
  test("an OpenAPI 3.1 document with every query route and its parameters", async () => {
    const res = await q.app.request("/v1/openapi.json");
    expect(res.status).toBe(200);
    const doc = await res.json();
    expect(doc.openapi).toBe("3.1.0");
    for (const path of ["/v1/sessions", "/v1/sessions/stats", "/v1/events", "/v1/funnels/{name}", "/v1/behavior/summary"]) {
      const op = doc.paths[path]?.get;
      expect(op).toBeDefined();
      const params = op.parameters.map((p: { name: string; in: string }) => `${p.in}:${p.name}`);
      for (const name of ["service_id", "from", "to", "tz", "country", "path", "utm_campaign"]) expect(params).toContain(`query:${name}`);
      expect(op.responses["200"].content["application/json"].schema).toBeDefined();
      expect(op.responses["400"]).toBeDefined();
    }
    expect(doc.paths["/v1/funnels/{name}"].get.parameters.map((p: { name: string }) => p.name)).toEqual(expect.arrayContaining(["name", "window", "by"]));
    expect(doc.paths["/v1/sessions/stats"].get.parameters.find((p: { name: string }) => p.name === "interval").schema.enum).toEqual(["hour", "day", "week", "month"]);
  });
});
