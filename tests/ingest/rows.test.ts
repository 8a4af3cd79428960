import { expect, test } from "bun:test";
import { collapseSessionRecords, decodeRecord, encodeRecord } from "../../src/ingest/rows.ts";

const T = Date.parse("2026-11-27T10:00:00Z");
const state = (sid: string, version: number, sign: 1 | -1, pageviews: number) =>
  encodeRecord("sessions", "shop", T, { sign, version, session_id: sid, pageviews }); // the field order sessionRecord writes
const event = encodeRecord("events", "shop", T, { name: "x" });

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
  const attrs = { hostname: "", referrer: "", referrer_domain: "", utm_source: "", utm_medium: "", utm_campaign: "", utm_term: "", utm_content: "", device: "desktop", browser: "Chrome", os: "Linux", country: "", screen_width: 0, screen_height: 0, language: "", timezone: "" };
  const touch = (time: number) => ({ time, kind: "pageview" as const, path: "/", conversion: false, userId: "", attrs });
  const v1 = openSession("shop", 'odd "id" \\ here', "visitor", touch(T));
  const v2 = applyTouch(v1, touch(T + 1000));
  const v3 = applyTouch(v2, touch(T + 2000));
  const lines = [...sessionRecords({ before: undefined, after: v1 }), ...sessionRecords({ before: v1, after: v2 }), ...sessionRecords({ before: v2, after: v3 })];
  expect(lines).toHaveLength(5);
  const kept = collapseSessionRecords(lines).map((l) => JSON.parse(decodeRecord(l).json) as { version: number; sign: number; pageviews: number });
  expect(kept.map((r) => [r.version, r.sign, r.pageviews])).toEqual([[3, 1, 3]]);
});

// The sink groups spool bytes without decoding them (groupRows); the string functions above are
// the reference. Spool records are built as spoolWriter builds them (a request's lines joined by
// "\n", UTF-8), with ids and values that stress the byte handling: multi-byte characters, quotes,
// backslashes, "|" inside the JSON, several services and dates.
test("groupRows (bytes) gives the rows, order, collapse and touched dates of the string path", async () => {
  const { groupRows, sessionRecords } = await import("../../src/ingest/rows.ts");
  const { openSession, applyTouch } = await import("../../src/ingest/sessions/session-state.ts");
  const { prng, testSeed } = await import("../helpers/seed.ts");
  const rng = prng(testSeed("groupRows", 20261128));
  const attrs = { hostname: "", referrer: "", referrer_domain: "", utm_source: "", utm_medium: "", utm_campaign: "", utm_term: "", utm_content: "", device: "desktop", browser: "Chrome", os: "Linux", country: "", screen_width: 0, screen_height: 0, language: "", timezone: "" };
  const odd = ["plain", 'q"uo\\te', "Grüße|中文", "🎉|👍🏽", "a|b|c", "\\", "x".repeat(64)];
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
          lines.push(...sessionRecords({ before, after }));
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
        touched.set(serviceId, (touched.get(serviceId) ?? new Set()).add(date));
      }
      const got = groupRows(bytes, { collapse });
      const decoded = new Map([...got.tables].map(([t, rows]) => [t as string, rows.map((r) => new TextDecoder().decode(r.buf.subarray(r.start, r.end)))]));
      expect(decoded).toEqual(expected);
      expect(got.touched).toEqual(touched);
    }
  }
});

test("groupRows refuses a line without the table|service|date prefix instead of inventing a table", async () => {
  const { groupRows } = await import("../../src/ingest/rows.ts");
  expect(() => groupRows([new TextEncoder().encode(`${event}\n{"no":"prefix"}`)])).toThrow(/without table\|service\|date prefix/);
});
