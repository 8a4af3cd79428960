// The service's embedded client asks for whole answers (wait_end_of_query=1), so a read runs on
// chdb's worker threads from start to end. A streamed read is planned on the calling thread: chdb's
// stream call analyses the query synchronously, which evaluates scalar subqueries and builds
// `IN (subquery)` sets, and the event loop (every ingest request) waited for it. Found with a
// 30-day summary filtered by device: 796-844 ms with the loop held (storage/embedded/http-handler.ts).
import { expect, test } from "bun:test";
import { testClickHouse } from "../helpers/clickhouse.ts";

/** The longest the event loop went without running a 1 ms timer while `work` ran. */
async function longestLoopHold(work: () => Promise<unknown>): Promise<number> {
  let last = performance.now();
  let longest = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 1);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  return Math.max(longest, performance.now() - last);
}

// Analysing this query runs its scalar subquery, which sleeps 0.6 s: a stand-in for a large set
// built at planning time that takes no CPU from the rest of the suite.
const SLOW_TO_PLAN = "SELECT (SELECT sleep(0.6)) AS x";

test("a read on the service's embedded client leaves the event loop free while the engine plans it", async () => {
  const { client } = testClickHouse();
  const read = async (settings: Record<string, 0 | 1>) => (await client.query({ query: SLOW_TO_PLAN, format: "JSONEachRow", clickhouse_settings: settings })).json();
  await read({}); // the engine opened and warm
  const whole = await longestLoopHold(() => read({}));
  const streamed = await longestLoopHold(() => read({ wait_end_of_query: 0 }));
  console.log(`[reads off the loop] longest hold: ${whole.toFixed(0)} ms by default, ${streamed.toFixed(0)} ms streamed`);
  // By default (whole answers) the loop keeps turning; 0.3 s leaves room for a busy machine and is
  // half of what the engine spends on the query.
  expect(whole).toBeLessThan(300);
}, 30_000);
