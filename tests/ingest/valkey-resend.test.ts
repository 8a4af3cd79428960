// ioredis re-sends, once connected again, every command that was sent but not answered when its
// connection dropped, and hands the caller the second run's answer (valkey-client.ts). These tests
// lose a write's answer on purpose (fault injection: a TCP proxy between the service's client and
// the real Valkey passes the write through, then cuts the connection before the answer comes back)
// and check that the write's second run reads as its first: a claim as this request's, a session
// commit as done, and that a refused commit is taken back even when Valkey is unreachable for a
// while after it ran.
import { afterAll, expect, test } from "bun:test";
import type Redis from "ioredis";
import { valkeyDedup } from "../../src/ingest/dedup.ts";
import { ingestItems, type IngestorDeps } from "../../src/ingest/ingestor.ts";
import { decodeRecord } from "../../src/ingest/rows.ts";
import type { SessionAttributes } from "../../src/ingest/sessions/session-state.ts";
import { type Placement, Sessionizer } from "../../src/ingest/sessions/sessionizer.ts";
import { memoryStateStore, valkeyStateStore } from "../../src/ingest/sessions/state-store.ts";
import { ingestValkeyClient } from "../../src/ingest/valkey-client.ts";
import { createMetrics } from "../../src/ops/metrics.ts";
import { startTcpFaultProxy, type TcpFaultProxy } from "../helpers/tcp-fault-proxy.ts";
import { freeDbPrefix, valkeyUrl } from "../setup/valkey.ts";

const closers: Array<() => unknown> = [];
afterAll(async () => {
  for (const close of closers.reverse()) await close();
});

/** The service's own client (same options), connected to Valkey through a fault proxy. */
async function clientThroughProxy(): Promise<{ redis: Redis; proxy: TcpFaultProxy }> {
  const proxy = await startTcpFaultProxy(Number(new URL(valkeyUrl()).port));
  closers.push(() => proxy.close());
  const redis = ingestValkeyClient({ url: proxy.url.replace("http:", "redis:"), db: 0, password: undefined });
  closers.push(() => redis.disconnect());
  redis.on("error", () => {}); // the service logs these (compose.ts); here the cut is on purpose
  await untilReady(redis);
  return { redis, proxy };
}

async function untilReady(redis: Redis): Promise<void> {
  for (let i = 0; i < 200 && redis.status !== "ready"; i++) await Bun.sleep(10);
  expect(redis.status).toBe("ready");
}

const now = Date.now();
const ctx = { serviceId: "shop", keyType: "secret" as const, headers: new Headers(), socketIp: "8.8.8.8", receivedAt: now, trustProxy: false };
const item = (eventId: string) => ({ type: "event", name: "signup", event_id: eventId, timestamp: now - 60_000, anonymous_id: "resend", ip: "8.8.8.8", user_agent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0" });

test("fault injected (a claim's answer lost with its connection, then re-sent by ioredis): the request is accepted and stored once, its retry is a duplicate", async () => {
  const { redis, proxy } = await clientThroughProxy();
  const prefix = `${freeDbPrefix()}:eid:`;
  const rows: string[] = [];
  const deps: IngestorDeps = {
    sessionizer: new Sessionizer(memoryStateStore()),
    dedup: valkeyDedup(redis, { prefix, owner: { id: "inst-1", journal: `${prefix}journal` } }),
    writer: { assertRoom() {}, write: async (r) => void rows.push(...r) },
    metrics: createMetrics(),
    hashVisitor: () => "visitor",
    lookupCountry: () => null,
  };
  const id = crypto.randomUUID();
  const cut = proxy.cutReplyTo("NX"); // the claim: SET … NX GET
  // Before: the re-sent claim met this request's own pending claim, read it as another request's,
  // and the request was refused (503) while its claim kept the retries out for 60 s.
  const first = await ingestItems(deps, ctx, [item(id)]);
  await cut; // the answer was indeed lost
  expect([first.accepted, first.dropped]).toEqual([1, []]);
  const events = () => rows.map((r) => decodeRecord(r)).filter((r) => r.table === "events");
  expect(events()).toHaveLength(1);
  const retry = await ingestItems(deps, ctx, [item(id)]);
  expect(retry.dropped.map((d) => d.reason)).toEqual(["duplicate"]);
  expect(events()).toHaveLength(1);
});

const attrs: SessionAttributes = {
  hostname: "shop.example", referrer: "", referrer_domain: "", utm_source: "", utm_medium: "", utm_campaign: "",
  utm_term: "", utm_content: "", device: "desktop", browser: "Firefox", os: "Linux", country: "DE",
  screen_width: 0, screen_height: 0, language: "", timezone: "",
};
const T0 = now - 3_600_000;
const MIN = 60_000;
const view = (time: number, path: string): Placement => ({ serviceId: "shop", visitorId: "v", touch: { time, kind: "pageview", path, conversion: false, userId: "", attrs } });
// A marker only the journaled commit script carries (its HSET of the journal record).
const COMMIT = "HSET', KEYS[n + 1]";

test("fault injected (a session commit's answer lost with its connection, then re-sent by ioredis): it counts once", async () => {
  const { redis, proxy } = await clientThroughProxy();
  const journal = `${freeDbPrefix()}:journal`;
  let n = 0;
  const s = new Sessionizer(valkeyStateStore(redis, `${freeDbPrefix()}:`, { journal }), () => `s${++n}`);
  await s.settle(await s.assign([view(T0, "/a")]));
  const cut = proxy.cutReplyTo(COMMIT);
  // Before: the re-sent commit's compare failed against its own writes, and the sessionizer
  // applied the page view again on top of them (3 page views for 2).
  const second = await s.assign([view(T0 + MIN, "/b")]);
  await cut;
  expect(second.changes[0]!.after).toMatchObject({ pageviews: 2, items: 2, exit_path: "/b" });
  await s.settle(second);
  expect(await redis.hlen(journal)).toBe(0);
  const third = await s.assign([view(T0 + 2 * MIN, "/c")]);
  expect(third.sessionIds[0]).toBe(second.sessionIds[0]!);
  expect(third.changes[0]!.after).toMatchObject({ pageviews: 3, items: 3 });
});

test("fault injected (a session commit that ran, its connection cut and Valkey unreachable past the command timeout): the commit is taken back once Valkey is reachable again", async () => {
  const { redis, proxy } = await clientThroughProxy();
  const journal = `${freeDbPrefix()}:journal`;
  let n = 0;
  const s = new Sessionizer(valkeyStateStore(redis, `${freeDbPrefix()}:`, { journal }), () => `s${++n}`);
  const first = await s.assign([view(T0, "/a")]);
  await s.settle(first);
  const cut = proxy.cutReplyTo(COMMIT);
  const refused = s.assign([view(T0 + MIN, "/b")]).catch((e: unknown) => e);
  await cut;
  proxy.hang(); // the reconnect is accepted and held: no answer until resume
  // The request is refused (its commit ran, but no answer came within the 1 s command timeout),
  // and its reverse cannot reach Valkey yet.
  expect(await refused).toBeInstanceOf(Error);
  await Bun.sleep(700); // a retry or two of the reverse fail meanwhile
  proxy.resume();
  await untilReady(redis);
  // Before: the one reverse sent at the refusal failed and was dropped; the commit stayed (and
  // ioredis's re-send of it, after the reconnect, changed nothing), so the session kept the
  // refused page view and the client's retry would count it again.
  for (let i = 0; i < 100 && (await redis.hlen(journal)) > 0; i++) await Bun.sleep(20);
  expect(await redis.hlen(journal)).toBe(0);
  const next = await s.assign([view(T0 + 2 * MIN, "/c")]);
  expect(next.sessionIds[0]).toBe(first.sessionIds[0]!);
  expect(next.changes[0]!.after).toMatchObject({ pageviews: 2, items: 2, exit_path: "/c" });
});

// A release that ioredis re-sends after a reconnect runs after whatever happened to the id in
// between: another instance may have claimed it for the client's retry, stored and confirmed it.
test("a release takes away only the claims this instance's calls made and hold, never another instance's claim nor a confirmed id", async () => {
  const redis = ingestValkeyClient({ url: valkeyUrl(), db: 0, password: undefined });
  closers.push(() => redis.disconnect());
  await untilReady(redis);
  const prefix = `${freeDbPrefix()}:eid:`;
  const a = valkeyDedup(redis, { prefix, owner: { id: "inst-a", journal: `${prefix}journal-a` } });
  const b = valkeyDedup(redis, { prefix, owner: { id: "inst-b", journal: `${prefix}journal-b` } });
  expect(await a.claim(["shop:1", "shop:2", "shop:3"])).toEqual([true, true, true]);
  await a.release(["shop:1", "shop:2", "shop:3"]);
  expect(await b.claim(["shop:1", "shop:2"])).toEqual([true, true]); // the retry, through instance b
  await b.confirm(["shop:2"]);
  await a.release(["shop:1", "shop:2", "shop:3"]); // the same release again, late
  expect(await redis.get(`${prefix}shop:1`)).toStartWith("p:inst-b:");
  expect(await redis.get(`${prefix}shop:2`)).toBe("1");
  expect(await redis.get(`${prefix}shop:3`)).toBeNull();
});

// A durability audit: with the connection cut and the reconnect held 2.5-3 s, a request refused
// meanwhile (its commit got no answer within the 1 s command timeout) could not give its claims
// back, and that release was dropped: the client's retries got 503 for 60 s.
test("fault injected (a request refused while Valkey is unreachable for longer than the command timeout): its claims are given back once Valkey is reachable, and the retry is stored", async () => {
  const { redis, proxy } = await clientThroughProxy();
  const prefix = `${freeDbPrefix()}:`;
  const rows: string[] = [];
  const deps: IngestorDeps = {
    sessionizer: new Sessionizer(valkeyStateStore(redis, `${prefix}sess:`, { journal: `${prefix}journal` })),
    dedup: valkeyDedup(redis, { prefix: `${prefix}eid:`, owner: { id: "inst-1", journal: `${prefix}claims` } }),
    writer: { assertRoom() {}, write: async (r) => void rows.push(...r) },
    metrics: createMetrics(),
    hashVisitor: () => "visitor",
    lookupCountry: () => null,
  };
  const id = crypto.randomUUID();
  const cut = proxy.cutReplyTo(COMMIT);
  const refused = ingestItems(deps, ctx, [item(id)]).catch((e: unknown) => e);
  await cut;
  proxy.hang();
  expect(await refused).toBeInstanceOf(Error);
  expect(rows).toHaveLength(0);
  await Bun.sleep(700);
  proxy.resume();
  await untilReady(redis);
  for (let i = 0; i < 100 && (await redis.get(`${prefix}eid:shop:${id}`)) !== null; i++) await Bun.sleep(20);
  expect(await redis.get(`${prefix}eid:shop:${id}`)).toBeNull();
  const retry = await ingestItems(deps, ctx, [item(id)]);
  expect([retry.accepted, retry.dropped]).toEqual([1, []]);
  const stored = rows.map((r) => decodeRecord(r));
  expect(stored.filter((r) => r.table === "events")).toHaveLength(1);
});
