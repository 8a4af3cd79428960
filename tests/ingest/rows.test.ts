import { expect, test } from "bun:test";
import { collapseSessionRecords, decodeRecord, encodeRecord } from "../../src/ingest/rows.ts";

const T = Date.parse("2026-11-27T10:00:00Z");
const state = (sid: string, version: number, sign: 1 | -1, pageviews: number) =>
  encodeRecord("sessions", "shop", T, { session_id: sid, version, sign, pageviews });
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
