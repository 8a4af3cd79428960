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
