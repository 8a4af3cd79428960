// Two instances behind a load balancer share one Valkey (session state, event-id claims, salts)
// and one ClickHouse. One visitor's items, sent alternately to instance A and instance B, must
// give the same sessions as the same traffic sent to a single instance: three sessions (the gaps
// between them are 30 minutes exactly and 45 minutes), with the same page views, custom events,
// items, durations, entry and exit pages, bounce and conversion flags.
import { expect, test } from "bun:test";
import { useSinkFixture, type ServiceProcess } from "../helpers/service-process.ts";
import { freeDbIndex } from "../setup/valkey.ts";
import { BROWSER_UA, badSessionSigns } from "./load.ts";

const sink = useSinkFixture();

const MIN = 60_000;
// 10:00 UTC yesterday: inside the 30-day back-fill window, and all items on one UTC day (one salt).
const BASE = (() => {
  const d = new Date();
  d.setUTCDate(d.getUTCDate() - 1);
  d.setUTCHours(10, 0, 0, 0);
  return d.getTime();
})();

type Spec = [offsetMs: number, item: Record<string, unknown>];
const page = (path: string) => ({ type: "pageview", url: `https://two.example${path}`, title: path });
const event = (name: string, extra: Record<string, unknown> = {}) => ({ type: "event", name, url: "https://two.example/app", ...extra });

// Session 1: 0 → 12 min; the next item comes exactly 30 minutes after its last one.
// Session 2: 42 → 50 min; the next item comes 45 minutes later. Session 3: a single page view (a bounce).
const TRAFFIC: Spec[] = [
  [0, { type: "session", url: "https://two.example/?utm_source=news&utm_medium=email", referrer: "https://news.example/" }],
  [0.5 * MIN, page("/")],
  [2 * MIN, page("/pricing")],
  [3 * MIN, event("cta_click")],
  [5 * MIN, { type: "funnel", funnel: "signup", step: 1 }],
  [7 * MIN, page("/signup")],
  [9 * MIN, event("signup", { conversion: true })],
  [12 * MIN, { type: "vitals", url: "https://two.example/signup", lcp: 1800, cls: 0.02 }],
  [42 * MIN, page("/docs")], // 30:00 after the last item: a new session
  [43 * MIN, page("/docs/api")],
  [44.5 * MIN, event("copy_snippet")],
  [46 * MIN, { type: "error", message: "TypeError: x is undefined", source: "https://two.example/app.js", line: 3, column: 7 }],
  [50 * MIN, page("/docs/sdk")],
  [95 * MIN, page("/blog")], // 45 minutes later: a third session, one page view only
];

interface Shape {
  started_at_ms: number;
  duration_ms: number;
  pageviews: number;
  events: number;
  items: number;
  is_bounce: number;
  converted: number;
  entry_path: string;
  exit_path: string;
}

/** Sends the traffic one item per request, to `targets` in turn; `together`: all at once. */
async function send(targets: ServiceProcess[], key: string, together = false): Promise<void> {
  const one = async (i: number, offset: number, item: Record<string, unknown>) => {
    const target = targets[i % targets.length]!;
    const res = await target.fetch("/v1/ingest/batch", {
      method: "POST",
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
      body: JSON.stringify({
        items: [{ ...item, event_id: crypto.randomUUID(), timestamp: new Date(BASE + offset).toISOString(), ip: "192.0.2.44", user_agent: BROWSER_UA }],
      }),
    });
    const body = (await res.json()) as { accepted: number; dropped: unknown[] };
    if (res.status !== 202 || body.accepted !== 1) throw new Error(`item ${i} to ${target.url}: ${res.status} ${JSON.stringify(body)}`);
  };
  if (together) await Promise.all(TRAFFIC.map(([offset, item], i) => one(i, offset, item)));
  else for (const [i, [offset, item]] of TRAFFIC.entries()) await one(i, offset, item);
}

/** The live sessions of a service, sign-weighted (what every reader of the table computes). */
async function shapes(serviceId: string): Promise<Shape[]> {
  const rows = await (await sink.client.query({
    query: `SELECT
              sum(sign * toUnixTimestamp64Milli(started_at)) AS started_at_ms,
              sum(sign * duration_ms) AS duration_ms,
              sum(sign * pageviews) AS pageviews,
              sum(sign * events) AS events,
              sum(sign * items) AS items,
              sum(sign * is_bounce) AS is_bounce,
              sum(sign * converted) AS converted,
              argMaxIf(entry_path, version, sign = 1) AS entry_path,
              argMaxIf(exit_path, version, sign = 1) AS exit_path
            FROM sessions WHERE service_id = {svc:String}
            GROUP BY session_id HAVING sum(sign) > 0
            ORDER BY started_at_ms`,
    query_params: { svc: serviceId },
    format: "JSONEachRow",
  })).json<Record<keyof Shape, number | string>>();
  return rows.map((r) => ({
    started_at_ms: Number(r.started_at_ms) - BASE, // relative, so both runs compare
    duration_ms: Number(r.duration_ms),
    pageviews: Number(r.pageviews),
    events: Number(r.events),
    items: Number(r.items),
    is_bounce: Number(r.is_bounce),
    converted: Number(r.converted),
    entry_path: String(r.entry_path),
    exit_path: String(r.exit_path),
  }));
}

/** Distinct session ids the item rows of a service carry. */
async function itemSessions(serviceId: string): Promise<number> {
  const rows = await (await sink.client.query({
    query: `SELECT uniqExact(session_id) AS n FROM (
              SELECT session_id FROM events WHERE service_id = {svc:String}
              UNION ALL SELECT session_id FROM page_views WHERE service_id = {svc:String}
              UNION ALL SELECT session_id FROM funnel_events WHERE service_id = {svc:String}
              UNION ALL SELECT session_id FROM errors WHERE service_id = {svc:String}
              UNION ALL SELECT session_id FROM web_vitals WHERE service_id = {svc:String})`,
    query_params: { svc: serviceId },
    format: "JSONEachRow",
  })).json<{ n: number | string }>();
  return Number(rows[0]!.n);
}

test("a visitor's items alternating between two instances form the sessions one instance forms", async () => {
  const started = Date.now();
  // LOG_LEVEL info: the start's advice on a shared ClickHouse is an info line (checked below).
  const valkey = { VALKEY_URL: process.env.TEST_VALKEY_URL!, VALKEY_DB: String(freeDbIndex()), LOG_LEVEL: "info" };
  const [a, b, single] = await Promise.all([
    sink.startService({ env: valkey }),
    sink.startService({ env: valkey }),
    sink.startService({ env: { LOG_LEVEL: "info" } }), // one instance, in-process state
  ]);
  const sharedKey = await a!.createKey({ type: "secret", service_id: "two_instances" }); // B finds it by lookup
  const concurrentKey = await b!.createKey({ type: "secret", service_id: "two_concurrent" });
  const singleKey = await single!.createKey({ type: "secret", service_id: "one_instance" });

  await send([a!, b!], sharedKey);
  await send([single!], singleKey);
  // The same items all at once, alternating: both instances change the visitor's state concurrently
  // (compare-and-set in Valkey) and items arrive out of order; no item bridges two sessions.
  await send([a!, b!], concurrentKey, true);
  // SIGTERM drains each spool into ClickHouse before the process exits.
  for (const s of [a!, b!, single!]) expect(await s.kill("SIGTERM")).toEqual({ code: 0, signal: null });
  // A start with Valkey logged "key store error … Stream isn't writeable": the revocation feed was
  // read before the connection was up (re-audit).
  for (const s of [a!, b!]) expect(s.logs()).not.toContain("key store error");
  // On a ClickHouse server without Valkey, the start says that the instance must be alone on its
  // database (an audit found a second one's cache answering stale for minutes); with Valkey not.
  const alone = "several instances on one ClickHouse database need a shared Valkey";
  expect([a!, b!, single!].map((s) => s.logs().includes(alone))).toEqual([false, false, true]);

  const two = await shapes("two_instances");
  const concurrent = await shapes("two_concurrent");
  const one = await shapes("one_instance");
  const signs = await Promise.all(["two_instances", "two_concurrent", "one_instance"].map((svc) => badSessionSigns(sink.client, svc)));
  console.log(
    `[two-instances] one instance: ${JSON.stringify(one)}\n[two-instances] two instances, alternating: ${two.length} sessions, ` +
      `same as one: ${Bun.deepEquals(two, one)}; two instances, concurrent: ${concurrent.length} sessions, same as one: ` +
      `${Bun.deepEquals(concurrent, one)}; ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );

  const expected: Shape[] = [
    { started_at_ms: 0, duration_ms: 12 * MIN, pageviews: 3, events: 2, items: 8, is_bounce: 0, converted: 1, entry_path: "/", exit_path: "/signup" },
    { started_at_ms: 42 * MIN, duration_ms: 8 * MIN, pageviews: 3, events: 1, items: 5, is_bounce: 0, converted: 0, entry_path: "/docs", exit_path: "/docs/sdk" },
    { started_at_ms: 95 * MIN, duration_ms: 0, pageviews: 1, events: 0, items: 1, is_bounce: 1, converted: 0, entry_path: "/blog", exit_path: "/blog" },
  ];
  expect(one).toEqual(expected);
  expect(two).toEqual(one);
  expect(concurrent).toEqual(one);
  for (const svc of ["two_instances", "two_concurrent", "one_instance"]) expect(await itemSessions(svc)).toBe(3);
  expect(signs.map((s) => s.bad)).toEqual([[], [], []]);
}, 90_000);
