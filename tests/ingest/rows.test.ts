import { expect, test } from "bun:test";
import { collapseSessionRecords, decodeRecord, encodeRecord, ROW_COLUMNS, rowObject } from "../../src/ingest/rows.ts";

const T = Date.parse("2026-11-27T10:00:00Z");
// Session rows in the object form of earlier versions (their first keys as sessionRecord wrote them).
const state = (sid: string, version: number, sign: 1 | -1, pageviews: number) =>
  encodeRecord("sessions", "shop", T, { sign, version, session_id: sid, pageviews });
const event = encodeRecord("events", "shop", T, { name: "x" });
const ATTRS = { hostname: "", referrer: "", referrer_domain: "", utm_source: "", utm_medium: "", utm_campaign: "", utm_term: "", utm_content: "", device: "desktop", browser: "Chrome", os: "Linux", country: "", screen_width: 0, screen_height: 0, language: "", timezone: "" };
/** A page view at `time` on "/", as a session's touch. */
const pageviewAt = (time: number) => ({ time, kind: "pageview" as const, path: "/", conversion: false, userId: "", attrs: ATTRS });

test("a flush keeps, per session, the cancel of its earlier state and its latest state only", () => {
  const lines = [
    state("a", 1, -1, 1), state("a", 2, 1, 2), // update of a state flushed earlier
    event,
    state("a", 2, -1, 2), state("a", 3, 1, 3), // next update in the same flush
    state("b", 1, 1, 1), // a new session
    state("a", 3, -1, 3), state("a", 4, 1, 4),
  ];
  const kept = collapseSessionRecords(lines).map((l) => {
    const { table, json } = decodeRecord(l);
    const r = JSON.parse(json) as { session_id?: string; version?: number; sign?: number };
    return table === "sessions" ? `${r.session_id} v${r.version} ${r.sign}` : table;
  });
  expect(kept).toEqual(["a v1 -1", "events", "b v1 1", "a v4 1"]);
  // The sums the views take are unchanged: sign-weighted page views 4 (a) + 1 (b), sessions 1 + 1.
  const sum = (ls: string[], f: (r: { sign: number; pageviews: number }) => number) =>
    ls.filter((l) => l.startsWith("sessions|")).reduce((n, l) => n + f(JSON.parse(decodeRecord(l).json)), 0);
  for (const f of [(r: { sign: number }) => r.sign, (r: { sign: number; pageviews: number }) => r.sign * r.pageviews]) {
    expect(sum(collapseSessionRecords(lines), f)).toBe(sum(lines, f));
  }
  expect(collapseSessionRecords(lines)).toEqual(collapseSessionRecords(lines)); // deterministic for replays
});

test("rows written by sessionRecords collapse (the fast path reads their leading fields), ids with quotes too", async () => {
  const { openSession, applyTouch } = await import("../../src/ingest/sessions/session-state.ts");
  const { sessionRecords } = await import("../../src/ingest/rows.ts");
  const v1 = openSession("shop", 'odd "id" \\ here', "visitor", pageviewAt(T));
  const v2 = applyTouch(v1, pageviewAt(T + 1000));
  const v3 = applyTouch(v2, pageviewAt(T + 2000));
  const lines = [...sessionRecords({ before: undefined, after: v1 }), ...sessionRecords({ before: v1, after: v2 }), ...sessionRecords({ before: v2, after: v3 })];
  expect(lines).toHaveLength(5);
  const kept = collapseSessionRecords(lines).map((l) => rowObject("sessions", decodeRecord(l).json) as { version: number; sign: number; pageviews: number });
  expect(kept.map((r) => [r.version, r.sign, r.pageviews])).toEqual([[3, 1, 3]]);
});

test("a session's rows collapse across the two forms (arrays now, objects left in the spool by an earlier version)", async () => {
  const { openSession, applyTouch } = await import("../../src/ingest/sessions/session-state.ts");
  const { sessionRecord } = await import("../../src/ingest/rows.ts");
  const v1 = openSession("shop", 'odd "id" \\ here', "visitor", pageviewAt(T));
  const v2 = applyTouch(v1, pageviewAt(T + 1000));
  // v1 +1 written as an object before an upgrade, its cancel as an array after it: they cancel.
  const lines = [objectForm(sessionRecord(v1, 1)), sessionRecord(v1, -1), sessionRecord(v2, 1)];
  expect(lines[0]).toStartWith(`sessions|shop|2026-11-27|{"sign":1,"version":1,"session_id":`);
  expect(collapseSessionRecords(lines)).toEqual([sessionRecord(v2, 1)]);
  const { groupRows } = await import("../../src/ingest/rows.ts");
  const grouped = groupRows([new TextEncoder().encode(lines.join("\n"))], { collapse: true });
  expect(grouped.tables.get("sessions")!.map((r) => new TextDecoder().decode(r.buf.subarray(r.start, r.end)))).toEqual([decodeRecord(sessionRecord(v2, 1)).json]);
});

test("rowObject names an array row's values by its table's columns, and refuses a row of another length", () => {
  expect(rowObject("session_aliases", '["shop","a","b",3,"2026-11-27T10:00:00.000Z"]')).toEqual({ service_id: "shop", alias: "a", canonical: "b", version: 3, started_at: "2026-11-27T10:00:00.000Z" });
  expect(rowObject("events", '{"name":"x"}')).toEqual({ name: "x" });
  expect(() => rowObject("session_aliases", '["shop","a"]')).toThrow(/2 values for 5 columns/);
});

test("the column lists of array rows are pinned: rows already spooled are read against them", () => {
  // Changing a list in place would misread every array row an older process left in the spool
  // (a restart replays them): a table that needs other columns needs a form told apart (rows.ts).
  const item = ["service_id", "event_id", "timestamp", "received_at", "session_id", "visitor_id", "user_id", "url", "path"];
  expect(ROW_COLUMNS as Record<string, readonly string[]>).toEqual({
    sessions: [
      "sign", "version", "session_id", "service_id", "visitor_id", "user_id", "started_at", "ended_at", "duration_s", "duration_ms",
      "pageviews", "events", "items", "is_bounce", "converted", "entry_path", "exit_path", "exit_at", "hostname", "referrer",
      "referrer_domain", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "device", "browser", "os", "country",
      "screen_width", "screen_height", "language", "timezone", "client_kept",
    ],
    events: [...item, "hostname", "name", "conversion", "properties"],
    page_views: [...item, "hostname", "title", "referrer", "referrer_domain", "utm_source", "utm_medium", "utm_campaign", "device", "browser", "os", "country"],
    funnel_events: [...item, "funnel", "step", "step_name"],
    errors: [...item, "fingerprint", "message", "stack", "source", "line", "column"],
    web_vitals: [...item, "lcp", "inp", "cls", "fcp", "ttfb"],
    session_items: item,
    session_aliases: ["service_id", "alias", "canonical", "version", "started_at"],
  });
});

/** A record's row in the object form of earlier versions (keys in column order). */
function objectForm(line: string): string {
  const { table, serviceId, date, json } = decodeRecord(line);
  return `${table}|${serviceId}|${date}|${JSON.stringify(rowObject(table, json))}`;
}

// The sink groups spool bytes without decoding them (groupRows); the string functions above are
// the reference. Spool records are built as spoolWriter builds them (a request's lines joined by
// "\n", UTF-8), with ids and values that stress the byte handling: multi-byte characters, quotes,
// backslashes, "|" inside the JSON, several services and dates.
test("groupRows (bytes) gives the rows, order, collapse and touched dates of the string path", async () => {
  const { groupRows, groupRowsInSlices, recordDates, sessionRecords } = await import("../../src/ingest/rows.ts");
  const { openSession, applyTouch } = await import("../../src/ingest/sessions/session-state.ts");
  const { prng, testSeed } = await import("../helpers/seed.ts");
  const rng = prng(testSeed("groupRows", 20261128));
  const attrs = { hostname: "", referrer: "", referrer_domain: "", utm_source: "", utm_medium: "", utm_campaign: "", utm_term: "", utm_content: "", device: "desktop", browser: "Chrome", os: "Linux", country: "", screen_width: 0, screen_height: 0, language: "", timezone: "" };
  // The longest ids the contract allows, also escaped at 6 bytes a character: the session row's head
  // (sign, version, id) is read from its first 1024 bytes.
  const odd = ["plain", 'q"uo\\te', "Grüße|中文", "🎉|👍🏽", "a|b|c", "\\", "x".repeat(64), "\u0001".repeat(64), '"'.repeat(64)];
  const services = ["shop", "blög", "svc-2"];
  type S = ReturnType<typeof openSession>;
  const live: S[] = [];
  for (let round = 0; round < 20; round++) {
    const requests: string[] = [];
    for (let r = rng.int(1, 30); r > 0; r--) {
      const lines: string[] = [];
      for (let i = rng.int(1, 4); i > 0; i--) {
        const time = T + rng.int(-3, 3) * 86_400_000 + rng.int(0, 3_600_000);
        const touch = { time, kind: "pageview" as const, path: `/${rng.pick(odd)}`, conversion: false, userId: "", attrs };
        const k = rng.int(0, live.length);
        if (k < live.length && rng.chance(0.7)) {
          const before = live[k]!;
          const after = applyTouch(before, touch);
          live[k] = after;
          // Some rows in the object form an earlier version left in the spool: both forms group and collapse alike.
          lines.push(...sessionRecords({ before, after }).map((l) => (rng.chance(0.2) ? objectForm(l) : l)));
        } else {
          const s = openSession(rng.pick(services), `${rng.pick(odd)}-${rng.uuid()}`, "visitor", touch);
          live.push(s);
          lines.push(...sessionRecords({ before: undefined, after: s }));
        }
        lines.push(encodeRecord("events", rng.pick(services), time, { name: rng.pick(odd), properties: JSON.stringify({ k: rng.pick(odd) }) }));
        if (rng.chance(0.1)) lines.push(encodeRecord("sessions", "shop", time, { not: "written by sessionRecord", v: rng.pick(odd) }));
      }
      requests.push(lines.join("\n"));
    }
    const bytes = requests.map((r) => new TextEncoder().encode(r));
    for (const collapse of [true, false]) {
      const lines = requests.flatMap((r) => r.split("\n"));
      const expected = new Map<string, string[]>();
      const touched = new Map<string, Set<string>>();
      for (const l of collapse ? collapseSessionRecords(lines) : lines) {
        const { table, serviceId, date, json } = decodeRecord(l);
        expected.set(table, [...(expected.get(table) ?? []), json]);
        for (const d of recordDates(date)) touched.set(serviceId, (touched.get(serviceId) ?? new Set()).add(d));
      }
      // The sink's sliced variant (sliceMs 0: it yields to the event loop every 32 records, with
      // other records' groupings interleaved meanwhile) must give the same result.
      const other = groupRowsInSlices(bytes.slice().reverse(), { collapse, sliceMs: 0 });
      for (const got of [groupRows(bytes, { collapse }), await groupRowsInSlices(bytes, { collapse, sliceMs: 0 })]) {
        const decoded = new Map([...got.tables].map(([t, rows]) => [t as string, rows.map((r) => new TextDecoder().decode(r.buf.subarray(r.start, r.end)))]));
        expect(decoded).toEqual(expected);
        expect(got.touched).toEqual(touched);
      }
      await other;
    }
  }
});

test("a session row touches every UTC date from its start through its end (the cache's invalidation units)", async () => {
  const { groupRows, recordDates, sessionRecords } = await import("../../src/ingest/rows.ts");
  const { openSession, applyTouch } = await import("../../src/ingest/sessions/session-state.ts");
  const attrs = { hostname: "", referrer: "", referrer_domain: "", utm_source: "", utm_medium: "", utm_campaign: "", utm_term: "", utm_content: "", device: "desktop", browser: "Chrome", os: "Linux", country: "", screen_width: 0, screen_height: 0, language: "", timezone: "" };
  const touch = (time: number) => ({ time, kind: "pageview" as const, path: "/", conversion: false, userId: "", attrs });
  const midnight = Date.parse("2026-11-28T00:00:00Z");
  const before = openSession("shop", "s1", "v", touch(midnight - 10 * 60_000)); // 23:50, one day
  const after = applyTouch(before, touch(midnight + 10 * 60_000)); // through 00:10: two days
  const lines = sessionRecords({ before, after });
  expect(lines.map((l) => decodeRecord(l).date)).toEqual(["2026-11-27", "2026-11-27..2026-11-28"]);
  expect(groupRows([new TextEncoder().encode(lines.join("\n"))]).touched).toEqual(new Map([["shop", new Set(["2026-11-27", "2026-11-28"])]]));
  expect(recordDates("2026-12-30..2027-01-02")).toEqual(["2026-12-30", "2026-12-31", "2027-01-01", "2027-01-02"]);
  expect(recordDates("2026-11-28")).toEqual(["2026-11-28"]);
});

test("groupRows refuses a line without the table|service|date prefix instead of inventing a table", async () => {
  const { groupRows, groupRowsInSlices } = await import("../../src/ingest/rows.ts");
  expect(() => groupRows([new TextEncoder().encode(`${event}\n{"no":"prefix"}`)])).toThrow(/without table\|service\|date prefix/);
  expect(groupRowsInSlices([new TextEncoder().encode(event), new TextEncoder().encode(`{"no":"prefix"}`)], { sliceMs: 0 })).rejects.toThrow(/without table\|service\|date prefix/);
});

test("groupRowsInSlices serves the event loop between slices", async () => {
  const { groupRowsInSlices } = await import("../../src/ingest/rows.ts");
  const records = Array.from({ length: 256 }, () => new TextEncoder().encode(event));
  // A task queued before the grouping starts runs at its first yield if it yields at all (a
  // timer would depend on how fast the slices go; this does not).
  let finished = false;
  let ranWhileGrouping: boolean | undefined;
  setImmediate(() => (ranWhileGrouping = !finished));
  const grouped = await groupRowsInSlices(records, { sliceMs: 0 });
  finished = true;
  await new Promise((r) => setImmediate(r));
  expect(grouped.tables.get("events")).toHaveLength(256);
  expect(ranWhileGrouping).toBe(true);
});

// The row builders write each row's values in one array literal; these references build the row as
// an object by column name and write its values in the pinned column order, so a value in the wrong
// place, or any difference in text, is a failure.
const referenceIso = (ms: number) => new Date(ms).toISOString();
function referenceSessionRecord(s: import("../../src/ingest/sessions/session-state.ts").SessionState, sign: 1 | -1): string {
  const durationMs = s.ended_at - s.started_at;
  // Dated from the session's start through its end (one date unless it spans UTC midnight).
  const [from, to] = [referenceIso(s.started_at).slice(0, 10), referenceIso(s.ended_at).slice(0, 10)];
  return `sessions|${s.service_id}|${from === to ? from : `${from}..${to}`}|${inColumnOrder("sessions", {
    sign, version: s.version, session_id: s.session_id, service_id: s.service_id, visitor_id: s.visitor_id,
    user_id: s.user_id, started_at: referenceIso(s.started_at), ended_at: referenceIso(s.ended_at),
    duration_s: Math.floor(durationMs / 1000), duration_ms: durationMs, pageviews: s.pageviews, events: s.events,
    items: s.items, is_bounce: s.pageviews === 1 && s.events === 0 ? 1 : 0, converted: s.converted ? 1 : 0,
    entry_path: s.entry_path, exit_path: s.exit_path, exit_at: referenceIso(s.exit_at), ...s.attrs,
    client_kept: s.client === true ? 1 : 0,
  })}`;
}
/** The object's values as a JSON array in the table's column order (every column must be there). */
function inColumnOrder(table: keyof typeof ROW_COLUMNS, row: Record<string, unknown>): string {
  const columns: readonly string[] = ROW_COLUMNS[table];
  expect(Object.keys(row).sort()).toEqual([...columns].sort());
  return JSON.stringify(columns.map((c) => row[c]));
}
function encodeRecordReference(table: keyof typeof ROW_COLUMNS, serviceId: string, time: number, row: Record<string, unknown>): string {
  return `${table}|${serviceId}|${referenceIso(time).slice(0, 10)}|${inColumnOrder(table, row)}`;
}
function referenceItemRecord(e: import("../../src/ingest/pipeline.ts").EnrichedItem, sessionId: string): string | null {
  const table = ({ session: "session_items", pageview: "page_views", event: "events", funnel: "funnel_events", error: "errors", vitals: "web_vitals" } as const)[e.type];
  if (!table) return null;
  const base = {
    service_id: e.serviceId, event_id: e.eventId, timestamp: referenceIso(e.time), received_at: referenceIso(e.receivedAt),
    session_id: sessionId, visitor_id: e.visitorId, user_id: e.userId, url: e.url, path: e.path,
  };
  const it = e.item;
  const rec = (row: Record<string, unknown>) => encodeRecordReference(table, e.serviceId, e.time, row);
  switch (it.type) {
    case "session":
      return rec(base);
    case "pageview":
      return rec({ ...base, hostname: e.hostname, title: it.title ?? "", referrer: e.referrer, referrer_domain: e.referrerDomain,
        utm_source: e.utm.source, utm_medium: e.utm.medium, utm_campaign: e.utm.campaign,
        device: e.device, browser: e.browser, os: e.os, country: e.country });
    case "event":
      return rec({ ...base, hostname: e.hostname, name: it.name, conversion: it.conversion ? 1 : 0, properties: JSON.stringify(it.properties ?? {}) });
    case "funnel":
      return rec({ ...base, funnel: it.funnel, step: it.step, step_name: it.step_name ?? "" });
    case "error":
      return rec({ ...base, fingerprint: e.fingerprint, message: it.message, stack: it.stack ?? "", source: it.source ?? "", line: it.line ?? 0, column: it.column ?? 0 });
    case "vitals":
      return rec({ ...base, lcp: it.lcp ?? null, inp: it.inp ?? null, cls: it.cls ?? null, fcp: it.fcp ?? null, ttfb: it.ttfb ?? null });
    default:
      return null;
  }
}

/** Strings that stress JSON escaping: quotes, backslashes, control characters, lone surrogates, "|", non-ASCII. */
const ODD = ["", "plain", 'q"uo\\te', "tab\there\nnew\u0001\u001f", "\ud800 lone", "lone \udfff", "Grüße|中文", "🎉|👍🏽", "\u2028\u2029", "</script>", "x".repeat(300)];

test("isoTime writes what toISOString writes (and throws where it throws)", async () => {
  const { isoTime } = await import("../../src/ingest/rows.ts");
  const { prng, testSeed } = await import("../helpers/seed.ts");
  const rng = prng(testSeed("isoTime", 20261129));
  const edges = [0, 1, 999, 86_399_999, 86_400_000, -1, -86_400_001, 951_782_400_000 /* 2000-02-29 */, 253_402_300_799_999, 253_402_300_800_000, 8.64e15, -8.64e15, 1.5, T + 0.999, -0];
  const randoms = Array.from({ length: 20_000 }, () => (rng.chance(0.5) ? T + rng.int(-40 * 86_400_000, 40 * 86_400_000) : rng.int(0, 253_402_300_799_999)));
  // Twice: the first pass fills the per-millisecond cache (and evicts: 20,000 values, 4096 slots),
  // the second reads what is cached.
  for (let pass = 0; pass < 2; pass++) for (const ms of [...edges, ...randoms]) expect(isoTime(ms)).toBe(referenceIso(ms));
  for (const ms of randoms.slice(0, 500)) expect([isoTime(ms), isoTime(ms + 4096), isoTime(ms)]).toEqual([referenceIso(ms), referenceIso(ms + 4096), referenceIso(ms)]);
  for (const bad of [NaN, Infinity, 8.64e15 + 1]) expect(() => isoTime(bad)).toThrow(RangeError);
});

function randomState(rng: import("../helpers/seed.ts").Rng) {
  const time = () => (rng.chance(0.9) ? T + rng.int(-35 * 86_400_000, 2 * 86_400_000) : rng.int(0, 253_402_300_799_999));
  const started = time();
  const ended = started + rng.int(0, 7_200_000);
  return {
    service_id: rng.pick(["shop", "blög", "svc-2", 'a{"sign":1,b']),
    session_id: `${rng.pick(ODD)}-${rng.uuid()}`,
    visitor_id: rng.pick(ODD),
    user_id: rng.pick(ODD),
    started_at: started,
    ended_at: ended,
    pageviews: rng.int(0, 3),
    events: rng.int(0, 2),
    items: rng.int(1, 500),
    converted: rng.chance(0.3),
    entry_path: rng.pick(ODD),
    entry_at: started,
    exit_path: rng.pick(ODD),
    exit_at: rng.chance(0.2) ? 0 : ended,
    version: rng.int(1, 10_000),
    ...(rng.chance(0.2) ? { client: true as const } : {}),
    attrs: {
      hostname: rng.pick(ODD), referrer: rng.pick(ODD), referrer_domain: rng.pick(ODD), utm_source: rng.pick(ODD),
      utm_medium: rng.pick(ODD), utm_campaign: rng.pick(ODD), utm_term: rng.pick(ODD), utm_content: rng.pick(ODD),
      device: rng.pick(ODD), browser: rng.pick(ODD), os: rng.pick(ODD), country: rng.pick(["", "DE", "US"]),
      screen_width: rng.int(0, 4000), screen_height: rng.pick([0, 1080, 2.5]), language: rng.pick(ODD), timezone: rng.pick(ODD),
    },
  };
}

test("session rows hold each column's value in its place, for both signs, over random states", async () => {
  const { sessionRecord } = await import("../../src/ingest/rows.ts");
  const { prng, testSeed } = await import("../helpers/seed.ts");
  const rng = prng(testSeed("sessionRecord", 20261130));
  for (let i = 0; i < 3000; i++) {
    const s = randomState(rng);
    for (const sign of [1, -1] as const) expect(sessionRecord(s, sign)).toBe(referenceSessionRecord(s, sign));
  }
});

test("a change's rows are the cancel row of the state before and the row of the state after, over random session histories", async () => {
  const { sessionRecords } = await import("../../src/ingest/rows.ts");
  const { applyTouch } = await import("../../src/ingest/sessions/session-state.ts");
  const { prng, testSeed } = await import("../helpers/seed.ts");
  const rng = prng(testSeed("cancelRows", 20261131));
  for (let k = 0; k < 300; k++) {
    let state = randomState(rng);
    expect(sessionRecords({ before: undefined, after: state })).toEqual([referenceSessionRecord(state, 1)]);
    for (let step = rng.int(1, 6); step > 0; step--) {
      const touch = {
        time: state.started_at + rng.int(-600_000, 3_600_000), kind: rng.pick(["pageview", "event", "session", "error"] as const),
        path: rng.pick(ODD), conversion: rng.chance(0.2), userId: rng.pick(ODD), attrs: randomState(rng).attrs,
      };
      const after = applyTouch(state, touch);
      // A state loaded from Valkey is a copy of the stored one: its rows are the same text.
      const before = rng.chance(0.2) ? structuredClone(state) : state;
      expect(sessionRecords({ before, after })).toEqual([referenceSessionRecord(state, -1), referenceSessionRecord(after, 1)]);
      state = after;
    }
  }
});

test("item rows hold each column's value in its place, for every item type", async () => {
  const { itemRecord } = await import("../../src/ingest/rows.ts");
  const { prng, testSeed } = await import("../helpers/seed.ts");
  const rng = prng(testSeed("itemRecord", 20261132));
  const opt = <V>(v: V) => (rng.chance(0.5) ? v : undefined);
  const items = [
    () => ({ type: "session" as const, screen: { width: 1, height: 2 } }),
    () => ({ type: "pageview" as const, title: opt(rng.pick(ODD)) }),
    () => ({ type: "event" as const, name: rng.pick(ODD), conversion: opt(rng.chance(0.5)), properties: opt({ [rng.pick(ODD)]: rng.pick(ODD), n: rng.int(0, 9), b: true, z: null }) }),
    () => ({ type: "funnel" as const, funnel: rng.pick(ODD), step: rng.int(1, 20), step_name: opt(rng.pick(ODD)) }),
    () => ({ type: "error" as const, message: rng.pick(ODD), stack: opt(rng.pick(ODD)), source: opt(rng.pick(ODD)), line: opt(rng.int(0, 4294967295)), column: opt(rng.int(0, 99)) }),
    () => ({ type: "vitals" as const, lcp: opt(rng.int(0, 60_000)), inp: opt(rng.int(0, 9999)), cls: opt(rng.pick([0, 0.05, 1e-7, 99.5])), fcp: opt(rng.int(0, 60_000)), ttfb: opt(0) }),
  ];
  let rows = 0;
  for (let i = 0; i < 3000; i++) {
    const item = rng.pick(items)();
    const s = randomState(rng);
    const e = {
      index: 0, type: item.type, item, serviceId: s.service_id, eventId: rng.pick([rng.uuid(), rng.pick(ODD)]),
      time: s.started_at, receivedAt: s.ended_at, clientSessionId: undefined, userId: rng.pick(ODD), visitorId: rng.pick(ODD),
      url: rng.pick(ODD), path: rng.pick(ODD), hostname: rng.pick(ODD), referrer: rng.pick(ODD),
      referrerDomain: rng.pick(ODD), utm: { source: rng.pick(ODD), medium: rng.pick(ODD), campaign: rng.pick(ODD), term: "", content: "" },
      device: rng.pick(ODD), browser: rng.pick(ODD), os: rng.pick(ODD), country: rng.pick(ODD), fingerprint: rng.pick(ODD),
    } as unknown as import("../../src/ingest/pipeline.ts").EnrichedItem;
    const sid = `${rng.pick(ODD)}${rng.uuid()}`;
    const got = itemRecord(e, sid);
    expect(got).toBe(referenceItemRecord(e, sid));
    if (got) rows++;
  }
  expect(rows).toBeGreaterThan(2000);
});

test("the event ids of a leftover spool are its item rows' ids, in either form; session and alias rows name none", async () => {
  const { spooledEventKeys } = await import("../../src/ingest/warm-up.ts");
  const { itemRecord, mergeRecords, sessionRecord } = await import("../../src/ingest/rows.ts");
  const { openSession } = await import("../../src/ingest/sessions/session-state.ts");
  const ids = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()];
  const item = (type: "pageview" | "event" | "session", eventId: string) =>
    itemRecord({ type, item: { type, name: "n", title: "t" }, serviceId: "shop", eventId, time: T, receivedAt: T, userId: "", visitorId: "v", url: "", path: "/", hostname: "", referrer: "", referrerDomain: "", utm: { source: "", medium: "", campaign: "", term: "", content: "" }, device: "", browser: "", os: "", country: "", fingerprint: "" } as unknown as import("../../src/ingest/pipeline.ts").EnrichedItem, "s1")!;
  const session = openSession("shop", crypto.randomUUID(), "v", pageviewAt(T));
  // A merge's alias row: its second value is a session id (a UUID too), not an event id.
  const alias = mergeRecords({ cancelled: [], aliases: [{ service_id: "shop", alias: crypto.randomUUID(), canonical: session.session_id, version: 2, started_at: T }] });
  const request1 = [item("pageview", ids[0]!), sessionRecord(session, 1), ...alias].join("\n");
  const request2 = [objectForm(item("event", ids[1]!)), item("session", ids[2]!)].join("\n");
  const keys = spooledEventKeys([new TextEncoder().encode(request1), new TextEncoder().encode(request2)]);
  expect(keys).toEqual(ids.map((id) => `shop:${id}`));
});
