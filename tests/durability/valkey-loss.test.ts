// With Valkey, session states and event-id claims live there, not in the process. When Valkey
// loses its data (here FLUSHDB on the service's database: the same as a restart without
// persistence or an eviction), the service notices the missing marker key and rebuilds both from
// ClickHouse, as a restarted in-process service does: a retried event stays a duplicate and a
// visit goes on in its session. (The day's visitor-id salts are put back from the running
// instances and the DATA_DIR copies: tests/enrich/salt-store.test.ts.)
import { expect, test } from "bun:test";
import Redis from "ioredis";
import { WARM_MARKER } from "../../src/ingest/warm-up.ts";
import { useSinkFixture } from "../helpers/service-process.ts";
import { freeDbIndex } from "../setup/valkey.ts";

const sink = useSinkFixture();

test("after Valkey loses its data, a retried event is still a duplicate and a visit goes on in its session", async () => {
  const db = freeDbIndex();
  const svc = await sink.startService({ env: { VALKEY_URL: process.env.TEST_VALKEY_URL!, VALKEY_DB: String(db), LOG_LEVEL: "info" } });
  const redis = new Redis(`${process.env.TEST_VALKEY_URL!}/${db}`);
  try {
    expect(await redis.exists(WARM_MARKER)).toBe(1); // set by the start-up check
    const key = await svc.createKey({ type: "secret", service_id: "valkey_loss" });
    const admin = await svc.createKey({ type: "admin", services: ["valkey_loss"] });
    const post = async (path: string, body: unknown) => {
      const res = await svc.fetch(path, { method: "POST", headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" }, body: JSON.stringify(body) });
      expect(res.status).toBe(202);
      return (await res.json()) as { accepted: number; dropped: Array<{ reason: string }>; session_id?: string };
    };
    const t = Date.now() - 10 * 60_000;
    const who = { anonymous_id: "loss-visitor", ip: "8.8.8.8", user_agent: "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0" };
    const event = { ...who, event_id: crypto.randomUUID(), name: "buy", timestamp: t };
    expect((await post("/v1/ingest/event", event)).accepted).toBe(1);
    const first = await post("/v1/ingest/session", { ...who, url: "https://shop.example/a", timestamp: t + 1000 });

    // Wait until the rows are in ClickHouse (the warm-up reads them there), then lose Valkey's data.
    const events = async () => ((await (await svc.fetch(`/v1/events?service_id=valkey_loss`, { headers: { Authorization: `Bearer ${admin}` } })).json()) as { data: unknown[] }).data;
    for (let i = 0; i < 100 && (await events()).length === 0; i++) await Bun.sleep(100);
    await redis.flushdb();
    // Before the service sees the loss (its check runs every 5 s): an item of the visitor 45
    // minutes before the visit, a new session either way, whose span list the rebuild finds
    // written. The visit's span must still be added to it, or the visit's next item below
    // starts a session of its own (a Valkey-loss audit: items in those seconds split visits
    // long after).
    const gap = await post("/v1/ingest/pageview", { ...who, url: "https://shop.example/gap", timestamp: t - 45 * 60_000 });
    expect(gap.accepted).toBe(1);
    const deadline = Date.now() + 20_000;
    while ((await redis.exists(WARM_MARKER)) === 0 && Date.now() < deadline) await Bun.sleep(200);
    expect(await redis.exists(WARM_MARKER)).toBe(1);
    // Each loss is logged as such, the one the timed check found as the one at start (a Valkey-loss
    // audit saw only "state warmed up" after a FLUSHALL).
    // The start found nothing to rebuild (an info line); the loss a warning, as something was lost.
    const lossLines = () => svc.logs().split("\n").filter((l) => l.includes("valkey held no ingest state"));
    for (let i = 0; i < 20 && lossLines().length < 2; i++) await Bun.sleep(100);
    expect(lossLines().map((l) => (JSON.parse(l) as { level: string }).level)).toEqual(["info", "warn"]);

    const retried = await post("/v1/ingest/event", event);
    expect(retried).toMatchObject({ accepted: 0, dropped: [{ reason: "duplicate" }] });
    const later = await post("/v1/ingest/session", { ...who, url: "https://shop.example/b", timestamp: t + 60_000 });
    expect(later.session_id).toBe(first.session_id!);

    await Bun.sleep(1500);
    expect(await events()).toHaveLength(1);
  } finally {
    redis.disconnect();
  }
}, 90_000);
