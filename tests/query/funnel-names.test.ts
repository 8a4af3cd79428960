// A funnel step's `name` (README, "Funnel steps and their names"): the most recent non-empty
// step_name among the step's items in the range, the greater name when two share that time; ""
// when none named it; steps listed up to the highest one present. Rows written straight into
// the real schema, so each rule is met by exactly one row.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { funnelReport } from "../../src/query/funnel.ts";
import { resolveRange } from "../../src/query/time-range.ts";
import { type AnalyticsDb, createAnalyticsDb } from "./fixtures/analytics-db.ts";

const NOW = Date.UTC(2026, 3, 3, 12);
const T = Date.UTC(2026, 3, 1, 10);
let db: AnalyticsDb;
let n = 0;

function step(session: string, ms: number, stepNo: number, stepName: string) {
  const ts = new Date(ms).toISOString().replace("T", " ").replace("Z", "");
  const id = `00000000-0000-4000-8000-${String(++n).padStart(12, "0")}`;
  return { service_id: "alpha", event_id: id, timestamp: ts, received_at: ts, session_id: session, visitor_id: `v-${session}`, user_id: "", funnel: "signup", step: stepNo, step_name: stepName, url: "", path: "" };
}

beforeAll(async () => {
  db = await createAnalyticsDb("fnames");
  const values = [
    // Step 1: "b" and "a" share the latest named time (the greater, "b", wins); "z" is older; the
    // newest item has no name; "zz" is after the range.
    step("s1", T, 1, "a"),
    step("s2", T, 1, "b"),
    step("s3", T - 60_000, 1, "z"),
    step("s4", T + 60_000, 1, ""),
    step("s5", Date.UTC(2026, 3, 2, 0, 0, 1), 1, "zz"),
    // Step 2: never named. Step 3: absent. Step 4: named once.
    step("s1", T + 1_000, 2, ""),
    step("s1", T + 2_000, 4, "paid"),
  ];
  await db.client.insert({ table: "funnel_events", values, format: "JSONEachRow" });
});
afterAll(async () => {
  await db.close();
});

test("a step's name is its latest non-empty step_name in the range, the greater one on a tie", async () => {
  const range = resolveRange({ from: "2026-04-01", to: "2026-04-01", tz: "UTC" }, NOW);
  for (const sharedSets of [false, true]) {
    const got = await funnelReport(db.client, { serviceId: "alpha", funnel: "signup", range, filters: {}, windowSeconds: 86_400, by: "session" }, { now: NOW, sharedSets });
    expect(got.steps.map((s) => [s.step, s.name, s.units])).toEqual([
      [1, "b", 4],
      [2, "", 1],
      [3, "", 0],
      [4, "paid", 0],
    ]);
  }
});

test("the range decides which names count: the next day's step 1 is named \"zz\"", async () => {
  const range = resolveRange({ from: "2026-04-02", to: "2026-04-02", tz: "UTC" }, NOW);
  const got = await funnelReport(db.client, { serviceId: "alpha", funnel: "signup", range, filters: {}, windowSeconds: 86_400, by: "session" }, { now: NOW });
  expect(got.steps.map((s) => [s.step, s.name, s.units])).toEqual([[1, "zz", 1]]);
});
