import { afterAll, describe, expect, test } from "bun:test";
import Redis from "ioredis";
import { IDLE_MS, type SessionAttributes, type Touch } from "../../src/ingest/sessions/session-state.ts";
import { Sessionizer, type Placement } from "../../src/ingest/sessions/sessionizer.ts";
import { memoryStateStore, valkeyStateStore, type StateStore } from "../../src/ingest/sessions/state-store.ts";
import { freeDbPrefix, valkeyUrl } from "../setup/valkey.ts";

const T0 = Date.parse("2026-03-29T00:40:00Z");
const MIN = 60_000;
const attrs = (over: Partial<SessionAttributes> = {}): SessionAttributes => ({
  hostname: "shop.example", referrer: "", referrer_domain: "", utm_source: "", utm_medium: "", utm_campaign: "",
  utm_term: "", utm_content: "", device: "desktop", browser: "Firefox", os: "Linux", country: "DE",
  screen_width: 0, screen_height: 0, language: "", timezone: "", ...over,
});
const touch = (time: number, kind: Touch["kind"], path = "", over: Partial<Touch> = {}): Touch => ({
  time, kind, path, conversion: false, userId: "", attrs: attrs(), ...over,
});
const place = (visitorId: string, t: Touch, sessionId?: string): Placement => ({ serviceId: "shop", visitorId, sessionId, touch: t });

let counter = 0;
const ids = () => `s${++counter}`;

const redis = new Redis(valkeyUrl(), { lazyConnect: false });
afterAll(() => redis.disconnect());

const stores: Array<[string, () => StateStore]> = [
  ["memory", () => memoryStateStore()],
  ["valkey", () => valkeyStateStore(redis, `${freeDbPrefix()}:`)],
];

describe.each(stores)("sessionizer on the %s store", (_name, makeStore) => {
  test("items less than 30 minutes apart share a session; a gap of exactly 30 minutes starts a new one", async () => {
    const s = new Sessionizer(makeStore(), ids);
    const a = await s.assign([place("v1", touch(T0, "pageview", "/a"))]);
    const b = await s.assign([place("v1", touch(T0 + IDLE_MS - 1, "pageview", "/b"))]);
    const c = await s.assign([place("v1", touch(T0 + IDLE_MS - 1 + IDLE_MS, "event"))]);
    expect(b.sessionIds[0]).toBe(a.sessionIds[0]!);
    expect(c.sessionIds[0]).not.toBe(a.sessionIds[0]!);
    const after = b.changes[0]!.after;
    expect(after.pageviews).toBe(2);
    expect(after.entry_path).toBe("/a");
    expect(after.exit_path).toBe("/b");
    expect(after.ended_at - after.started_at).toBe(IDLE_MS - 1);
    expect(b.changes[0]!.before?.pageviews).toBe(1);
  });

  test("a visitor's many sessions, sent out of order, are each found again by the items that join them", async () => {
    const s = new Sessionizer(makeStore(), ids);
    // 40 visits a day apart, 10:00-10:20; first the 10:20 items (40 sessions of one visitor at
    // once), then 10:00, then the 10:10 items that bridge each pair: every one joins its visit.
    const visits = Array.from({ length: 40 }, (_, k) => T0 + k * 24 * 60 * MIN);
    const late = await s.assign(visits.map((t) => place("busy", touch(t + 20 * MIN, "pageview", "/b"))));
    const early = await s.assign(visits.map((t) => place("busy", touch(t, "pageview", "/a"))));
    const middle = await s.assign(visits.map((t) => place("busy", touch(t + 10 * MIN, "pageview", "/m"))));
    expect(new Set(late.sessionIds).size).toBe(40);
    expect(early.sessionIds).toEqual(late.sessionIds); // within 30 minutes of 10:20: the same session
    expect(middle.sessionIds).toEqual(late.sessionIds);
    expect(middle.changes.map((c) => [c.after.pageviews, c.after.entry_path, c.after.exit_path])).toEqual(visits.map(() => [3, "/a", "/b"]));
  });

  test("a visitor with as many sessions as 30 days allow (1,441, 30 minutes apart) still has the oldest found by a late item", async () => {
    // Found by the time audit: spans were capped at 256, so a back-filled week of a heavy
    // anonymous visitor forgot its oldest sessions, and late items between them did not merge.
    const s = new Sessionizer(makeStore(), ids);
    const times = Array.from({ length: 1441 }, (_, k) => T0 + k * IDLE_MS);
    const first = await s.assign(times.map((t) => place("heavy", touch(t, "pageview", "/p"))));
    expect(new Set(first.sessionIds).size).toBe(1441);
    const bridge = await s.assign([place("heavy", touch(T0 + IDLE_MS / 2, "pageview", "/bridge"))]);
    expect(bridge.sessionIds).toEqual([first.sessionIds[0]!]);
    const merged = bridge.changes.find((c) => c.after.session_id === first.sessionIds[0]);
    expect([merged?.after.pageviews, merged?.after.started_at, merged?.after.ended_at]).toEqual([3, T0, T0 + IDLE_MS]);
  });

  test("a span goes when its session's state does (2 hours after the session last changed)", async () => {
    let now = T0;
    const store = makeStore();
    const s = new Sessionizer(store, ids, () => now);
    const spanIds = async () => ((await store.load(["v:shop:v-ttl"])).get("v:shop:v-ttl")?.value as Array<{ id: string }>).map((x) => x.id);
    const [a] = (await s.assign([place("v-ttl", touch(T0, "pageview", "/a"))])).sessionIds;
    now += 2 * 60 * MIN - 1;
    const [b] = (await s.assign([place("v-ttl", touch(T0 + 5 * 60 * MIN, "pageview", "/b"))])).sessionIds;
    expect(await spanIds()).toEqual([b!, a!]); // a's state still lives
    now += 1;
    const [c] = (await s.assign([place("v-ttl", touch(T0 + 10 * 60 * MIN, "pageview", "/c"))])).sessionIds;
    expect(await spanIds()).toEqual([c!, b!]); // a's state is gone: its span names nothing to go on
  });

  test("different visitors never share a session", async () => {
    const s = new Sessionizer(makeStore(), ids);
    const r = await s.assign([place("v1", touch(T0, "pageview", "/")), place("v2", touch(T0, "pageview", "/"))]);
    expect(r.sessionIds[0]).not.toBe(r.sessionIds[1]!);
  });

  test("a client session id always wins over the 30-minute rule", async () => {
    const s = new Sessionizer(makeStore(), ids);
    const r = await s.assign([
      place("v1", touch(T0, "pageview", "/x"), "client-1"),
      place("v1", touch(T0 + 3 * IDLE_MS, "pageview", "/y"), "client-1"),
      place("v1", touch(T0 + MIN, "pageview", "/z")),
    ]);
    expect(r.sessionIds[0]).toBe("client-1");
    expect(r.sessionIds[1]).toBe("client-1");
    expect(r.sessionIds[2]).not.toBe("client-1");
    const client = r.changes.find((c) => c.after.session_id === "client-1")!.after;
    expect(client.pageviews).toBe(2);
    expect(client.ended_at - client.started_at).toBe(3 * IDLE_MS);
  });

  // A black-box audit: a tracker keeps the id the session route answered; after a late item merged
  // that session into an earlier one, an item sent with the kept id opened a new session under it
  // (its rows and /v1/events, which reads the id as an alias, then disagreed).
  test("an item sent with a session id that a merge made an alias goes on the session it went into", async () => {
    const s = new Sessionizer(makeStore(), ids);
    const [y] = (await s.assign([place("v-alias", touch(T0, "pageview", "/y"))])).sessionIds;
    const [w] = (await s.assign([place("v-alias", touch(T0 + 50 * MIN, "session"))])).sessionIds;
    expect(w).not.toBe(y!);
    const bridge = await s.assign([place("v-alias", touch(T0 + 25 * MIN, "event"))]);
    expect(bridge.aliases.map((a) => [a.alias, a.canonical])).toEqual([[w!, y!]]);
    const kept = await s.assign([place("v-alias", touch(T0 + 52 * MIN, "pageview", "/w"), w)]);
    expect(kept.sessionIds).toEqual([y!]);
    expect(kept.changes.map((c) => c.after.session_id)).toEqual([y!]);
    expect(kept.changes[0]!.after).toMatchObject({ pageviews: 2, events: 1, items: 4, exit_path: "/w" });
    expect(kept.changes[0]!.after.client).toBeUndefined();
  });

  // The same audit: the session route's answer sent back as `session_id` joined that session, but
  // the visitor's next item without an id, 5 minutes later, opened a new one.
  test("a server-made session id sent back by the client keeps the session its visitor's for the 30-minute rule", async () => {
    const s = new Sessionizer(makeStore(), ids);
    const [x] = (await s.assign([place("v-back", touch(T0, "session"))])).sessionIds;
    expect((await s.assign([place("v-back", touch(T0 + 40 * MIN, "pageview", "/a"), x)])).sessionIds).toEqual([x!]);
    const next = await s.assign([place("v-back", touch(T0 + 45 * MIN, "event"))]);
    expect(next.sessionIds).toEqual([x!]);
    expect(next.changes[0]!.after).toMatchObject({ pageviews: 1, events: 1, items: 3 });
    // Another visitor's item sent with that id joins it too: the session's span (first to last
    // item) is its own visitor's window, as a restart rebuilds it; the other visitor's is unmoved.
    expect((await s.assign([place("v-other", touch(T0 + 70 * MIN, "pageview", "/b"), x)])).sessionIds).toEqual([x!]);
    expect((await s.assign([place("v-other", touch(T0 + 75 * MIN, "event"))])).sessionIds[0]).not.toBe(x!);
    expect((await s.assign([place("v-back", touch(T0 + 99 * MIN, "event"))])).sessionIds).toEqual([x!]);
    // An item of another visitor sent with the id, earlier than the session's start, does not take
    // the session (nor its window) from the visitor it was made for (a re-audit: it did).
    const earlier = await s.assign([place("v-early", touch(T0 - 20 * MIN, "pageview", "/e"), x)]);
    expect(earlier.sessionIds).toEqual([x!]);
    expect(earlier.changes[0]!.after).toMatchObject({ visitor_id: "v-back", started_at: T0 - 20 * MIN, entry_path: "/e" });
    expect((await s.assign([place("v-early", touch(T0 - 15 * MIN, "event"))])).sessionIds[0]).not.toBe(x!);
    expect((await s.assign([place("v-back", touch(T0 - 45 * MIN, "event"))])).sessionIds).toEqual([x!]);
  });

  test("a batch is placed in time order, not arrival order", async () => {
    const s = new Sessionizer(makeStore(), ids);
    const r = await s.assign([
      place("v1", touch(T0 + 50 * MIN, "pageview", "/late")),
      place("v1", touch(T0, "pageview", "/early")),
      place("v1", touch(T0 + 25 * MIN, "event")),
    ]);
    // 0 → 25 → 50 minutes: gaps under 30, one session.
    expect(new Set(r.sessionIds).size).toBe(1);
    const after = r.changes[0]!.after;
    expect(after.entry_path).toBe("/early");
    expect(after.exit_path).toBe("/late");
    expect(after.events).toBe(1);
    expect(after.pageviews).toBe(2);
  });

  test("attributes come from the earliest item, a conversion marks the session, bounce needs exactly one page view", async () => {
    const s = new Sessionizer(makeStore(), ids);
    const first = await s.assign([place("v9", touch(T0, "pageview", "/", { attrs: attrs({ utm_source: "news", country: "FR" }) }))]);
    expect(first.changes[0]!.after.pageviews).toBe(1);
    const later = await s.assign([
      place("v9", touch(T0 + MIN, "event", "", { conversion: true, attrs: attrs({ utm_source: "other", country: "US" }) })),
    ]);
    const after = later.changes[0]!.after;
    expect(after.attrs.utm_source).toBe("news");
    expect(after.attrs.country).toBe("FR");
    expect(after.converted).toBe(true);
    expect(after.version).toBe(2);
  });

  test("concurrent requests of one visitor lose no update (compare-and-set against what each read)", async () => {
    const s = new Sessionizer(makeStore(), ids);
    await s.assign([place("many", touch(T0, "pageview", "/"))]);
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => s.assign([place("many", touch(T0 + 1000 + i, "event"))])));
    expect(new Set(results.map((r) => r.sessionIds[0])).size).toBe(1);
    // Every request saw a distinct previous version: none overwrote another's update.
    expect(new Set(results.map((r) => r.changes[0]!.before?.version)).size).toBe(30);
    const final = await s.assign([place("many", touch(T0 + 5000, "pageview", "/end"))]);
    expect(final.changes[0]!.after).toMatchObject({ events: 30, pageviews: 2, items: 32, version: 32 });
  });

  test("a back-filled item between two sessions joins the one it is within 30 minutes of", async () => {
    const s = new Sessionizer(makeStore(), ids);
    const a = await s.assign([place("v3", touch(T0, "pageview", "/a"))]);
    const b = await s.assign([place("v3", touch(T0 + 5 * IDLE_MS, "pageview", "/b"))]);
    const late = await s.assign([place("v3", touch(T0 + 10 * MIN, "event"))]);
    expect(a.sessionIds[0]).not.toBe(b.sessionIds[0]!);
    expect(late.sessionIds[0]).toBe(a.sessionIds[0]!);
  });

  test("a late item within 30 minutes of two sessions merges them: the earlier keeps its id, the later is cancelled and aliased", async () => {
    const s = new Sessionizer(makeStore(), ids);
    const a = await s.assign([place("v4", touch(T0, "pageview", "/a", { userId: "early" }))]);
    const b = await s.assign([
      place("v4", touch(T0 + 40 * MIN, "pageview", "/b", { attrs: attrs({ country: "US" }) })),
      place("v4", touch(T0 + 41 * MIN, "event", "", { conversion: true, userId: "late" })),
    ]);
    const aId = a.sessionIds[0]!;
    const bId = b.sessionIds[0]!;
    expect(bId).not.toBe(aId); // 40 minutes apart: two sessions, until the item in between arrives
    const bridge = await s.assign([place("v4", touch(T0 + 20 * MIN, "event", "/mid", { userId: "middle" }))]);
    expect(bridge.sessionIds).toEqual([aId]);
    expect(bridge.changes).toHaveLength(1);
    const merged = bridge.changes[0]!;
    expect(merged.before).toBe(a.changes[0]!.after);
    expect(merged.after).toMatchObject({
      session_id: aId, started_at: T0, ended_at: T0 + 41 * MIN, pageviews: 2, events: 2, items: 4, converted: true,
      entry_path: "/a", exit_path: "/b", user_id: "late", merged: [bId],
    });
    expect(merged.after.attrs.country).toBe("DE"); // attributes of the earliest item
    expect(merged.after.version).toBeGreaterThan(Math.max(a.changes[0]!.after.version, b.changes[0]!.after.version));
    // The later session's state is cancelled (no new row): its items count in the merged one.
    expect(bridge.cancelled).toEqual([b.changes[0]!.after]);
    expect(bridge.aliases).toEqual([{ service_id: "shop", alias: bId, canonical: aId, version: merged.after.version, started_at: T0 }]);
    // Later items of either end join the merged session; nothing is merged twice.
    const next = await s.assign([place("v4", touch(T0 + 60 * MIN, "pageview", "/c"))]);
    expect(next.sessionIds).toEqual([aId]);
    expect(next.changes[0]!.before).toEqual(merged.after);
    expect(next.changes[0]!.after).toMatchObject({ items: 5, pageviews: 3, exit_path: "/c" });
    expect(next.cancelled).toEqual([]);
    expect(next.aliases).toEqual([]);
  });

  test("merges chain: a session merged into one that is merged later points to the last (its alias is rewritten, higher version)", async () => {
    const s = new Sessionizer(makeStore(), ids);
    const a = (await s.assign([place("v5", touch(T0, "pageview", "/a"))])).sessionIds[0]!;
    const b = (await s.assign([place("v5", touch(T0 + 40 * MIN, "pageview", "/b"))])).sessionIds[0]!;
    const c = (await s.assign([place("v5", touch(T0 + 80 * MIN, "pageview", "/c"))])).sessionIds[0]!;
    expect(new Set([a, b, c]).size).toBe(3);
    const first = await s.assign([place("v5", touch(T0 + 60 * MIN, "event"))]);
    expect(first.sessionIds).toEqual([b]);
    expect(first.aliases.map((x) => [x.alias, x.canonical])).toEqual([[c, b]]);
    const second = await s.assign([place("v5", touch(T0 + 20 * MIN, "event"))]);
    expect(second.sessionIds).toEqual([a]);
    expect(second.cancelled.map((x) => x.session_id)).toEqual([b]);
    expect(second.aliases.map((x) => [x.alias, x.canonical]).sort()).toEqual([[b, a], [c, a]].sort());
    expect(Math.min(...second.aliases.map((x) => x.version))).toBeGreaterThan(first.aliases[0]!.version);
    expect(second.changes[0]!.after).toMatchObject({ started_at: T0, ended_at: T0 + 80 * MIN, pageviews: 3, events: 2, items: 5, exit_path: "/c" });
  });

  test("one request can open a session and merge it with a stored one; its items all get the surviving id", async () => {
    const s = new Sessionizer(makeStore(), ids);
    const stored = await s.assign([place("v6", touch(T0 + 60 * MIN, "pageview", "/later"))]);
    const r = await s.assign([
      place("v6", touch(T0 + 40 * MIN, "event")),
      place("v6", touch(T0, "pageview", "/first")),
      place("v6", touch(T0 + 25 * MIN, "pageview", "/second")),
    ]);
    const id = r.sessionIds[1]!;
    expect(id).not.toBe(stored.sessionIds[0]!);
    expect(r.sessionIds).toEqual([id, id, id]);
    expect(r.cancelled).toEqual([stored.changes[0]!.after]);
    expect(r.changes).toHaveLength(1);
    expect(r.changes[0]!.before).toBeUndefined();
    expect(r.changes[0]!.after).toMatchObject({ started_at: T0, ended_at: T0 + 60 * MIN, items: 4, pageviews: 3, entry_path: "/first", exit_path: "/later" });
    expect(r.aliases.map((x) => [x.alias, x.canonical])).toEqual([[stored.sessionIds[0]!, id]]);
  });

  test("the user id is the latest item's (by time) that has one, whatever order the items arrive in", async () => {
    const s = new Sessionizer(makeStore(), ids);
    await s.assign([place("v7", touch(T0 + 10 * MIN, "pageview", "/", { userId: "later" }))]);
    const r = await s.assign([place("v7", touch(T0, "pageview", "/", { userId: "earlier" }))]);
    expect(r.changes[0]!.after.user_id).toBe("later");
  });

  test("client session ids are never merged by the 30-minute rule", async () => {
    const s = new Sessionizer(makeStore(), ids);
    await s.assign([place("v8", touch(T0, "pageview", "/"), "mine-1")]);
    await s.assign([place("v8", touch(T0 + 40 * MIN, "pageview", "/"), "mine-2")]);
    const r = await s.assign([place("v8", touch(T0 + 20 * MIN, "event"))]);
    expect(r.sessionIds[0]).not.toMatch(/^mine-/);
    expect(r.cancelled).toEqual([]);
    expect(r.aliases).toEqual([]);
  });
});

test.each(stores)("a span list that still names a merged session (left by a version that filed a visit under two days' ids) leads to the session it went into (%s store)", async (_name, makeStore) => {
  const store = makeStore();
  const s = new Sessionizer(store, ids);
  const midnight = Date.parse("2026-11-28T00:00:00Z");
  // Visitor d1: sessions a and b; a late item bridges them, b goes into a (b's state becomes a marker).
  const a = (await s.assign([place("d1", touch(midnight - 50 * MIN, "pageview", "/a"))])).sessionIds[0]!;
  const b = (await s.assign([place("d1", touch(midnight - 15 * MIN, "pageview", "/b"))])).sessionIds[0]!;
  const bridge = await s.assign([place("d1", touch(midnight - 32 * MIN, "event"))]);
  expect(bridge.sessionIds[0]).toBe(a);
  expect(bridge.cancelled.map((x) => x.session_id)).toEqual([b]);
  // Until 2026-11-30 a visit going on at midnight was filed under the next day's id d2 too, and
  // that list was not rewritten by the merge: state such a version left in a shared store.
  const now = Date.now();
  expect(await store.commit([{ key: "v:shop:d2", expected: null, next: [{ id: b, first: midnight - 15 * MIN, last: midnight + 10 * MIN, at: now }] }], 60 * MIN)).toBe(true);
  // d2's next item finds b in that list and goes on in a (not in a resurrected b).
  const after = await s.assign([place("d2", touch(midnight + 20 * MIN, "pageview", "/d"))]);
  expect(after.sessionIds[0]).toBe(a);
  expect(after.changes).toHaveLength(1);
  expect(after.changes[0]!.before?.items).toBe(3);
  expect(after.changes[0]!.after).toMatchObject({ session_id: a, items: 4, pageviews: 3, exit_path: "/d", started_at: midnight - 50 * MIN });
});

test("two sessionizers on one Valkey agree on a visitor's session (several instances)", async () => {
  const prefix = `${freeDbPrefix()}:`;
  const one = new Sessionizer(valkeyStateStore(redis, prefix), ids);
  const two = new Sessionizer(valkeyStateStore(redis, prefix), ids);
  const r1 = await one.assign([place("shared", touch(T0, "pageview", "/1"))]);
  const r2 = await two.assign([place("shared", touch(T0 + MIN, "pageview", "/2"))]);
  expect(r2.sessionIds[0]).toBe(r1.sessionIds[0]!);
  expect(r2.changes[0]!.after.pageviews).toBe(2);
});

test("an instance that remembers a state it wrote reads it again once another instance changed it", async () => {
  const prefix = `${freeDbPrefix()}:`;
  const one = new Sessionizer(valkeyStateStore(redis, prefix), ids);
  const two = new Sessionizer(valkeyStateStore(redis, prefix), ids);
  const first = await one.assign([place("back", touch(T0, "pageview", "/1"))]);
  await two.assign([place("back", touch(T0 + MIN, "event"))]); // one's remembered state is stale now
  const third = await one.assign([place("back", touch(T0 + 2 * MIN, "pageview", "/3"))]);
  expect(third.sessionIds[0]).toBe(first.sessionIds[0]!);
  expect(third.changes[0]!.before?.events).toBe(1);
  expect(third.changes[0]!.after).toMatchObject({ pageviews: 2, events: 1, items: 3, version: 3, exit_path: "/3" });
});

test("concurrent updates of one session through two instances lose nothing (compare-and-set retries)", async () => {
  const prefix = `${freeDbPrefix()}:`;
  const one = new Sessionizer(valkeyStateStore(redis, prefix), ids);
  const two = new Sessionizer(valkeyStateStore(redis, prefix), ids);
  await one.assign([place("busy", touch(T0, "pageview", "/"))]);
  await Promise.all(
    Array.from({ length: 40 }, (_, i) => (i % 2 ? one : two).assign([place("busy", touch(T0 + 1000 + i, "event"))])),
  );
  const final = await one.assign([place("busy", touch(T0 + 5000, "pageview", "/end"))]);
  expect(final.changes[0]!.after.events).toBe(40);
  expect(final.changes[0]!.after.pageviews).toBe(2);
  expect(final.changes[0]!.after.version).toBe(42);
});

test("at UTC midnight a hashed visitor gets a new id (daily salt), so a visit going on then is two sessions, one per id", async () => {
  const s = new Sessionizer(memoryStateStore(), ids);
  const midnight = Date.parse("2026-11-28T00:00:00Z");
  const before = await s.assign([place("day1-hash", touch(midnight - 10 * MIN, "pageview", "/a"))]);
  const after = await s.assign([place("day2-hash", touch(midnight + 5 * MIN, "pageview", "/b"))]);
  expect(after.sessionIds[0]).not.toBe(before.sessionIds[0]!);
  expect(after.changes[0]!.before).toBeUndefined();
  expect(after.changes[0]!.after).toMatchObject({ visitor_id: "day2-hash", started_at: midnight + 5 * MIN, pageviews: 1 });
  // Each id's items go on in that id's session; a late item before midnight joins the first one.
  const later = await s.assign([place("day2-hash", touch(midnight + 32 * MIN, "event"))]);
  expect(later.sessionIds[0]).toBe(after.sessionIds[0]!);
  const late = await s.assign([place("day1-hash", touch(midnight - 1, "event"))]);
  expect(late.sessionIds[0]).toBe(before.sessionIds[0]!);
  expect(late.changes[0]!.after).toMatchObject({ visitor_id: "day1-hash", items: 2, ended_at: midnight - 1 });
  // The same id across midnight (a client-kept anonymous_id) is one session.
  const kept1 = await s.assign([place("anon-1", touch(midnight - 10 * MIN, "pageview", "/a"))]);
  const kept2 = await s.assign([place("anon-1", touch(midnight + 5 * MIN, "pageview", "/b"))]);
  expect(kept2.sessionIds[0]).toBe(kept1.sessionIds[0]!);
});

test("the in-process store: past its cap the least recently written state goes first (reads do not count); expired states read as absent", async () => {
  let clock = 1_000;
  const store = memoryStateStore({ maxEntries: 2, now: () => clock });
  const write = async (key: string, next: unknown) => {
    const current = (await store.load([key])).get(key) ?? null;
    expect(await store.commit([{ key, expected: current, next }], 60_000)).toBe(true);
  };
  await write("a", 1);
  await write("b", 2);
  await store.load(["a"]); // a read: a is still the least recently written
  await write("c", 3); // evicts a
  expect([...(await store.load(["a", "b", "c"])).values()].map((s) => s?.value ?? null)).toEqual([null, 2, 3]);
  await write("b", 20); // b is now newer than c
  await write("d", 4); // evicts c
  expect([...(await store.load(["b", "c", "d"])).values()].map((s) => s?.value ?? null)).toEqual([20, null, 4]);
  // A compare-and-set against what an earlier load saw fails once someone else wrote.
  const seen = (await store.load(["b"])).get("b")!;
  await write("b", 21);
  expect(await store.commit([{ key: "b", expected: seen, next: 22 }], 60_000)).toBe(false);
  clock += 60_000;
  expect((await store.load(["b"])).get("b")).toBeNull();
  expect(store.size()).toBe(1); // the expired b was dropped on read; d is still there until read
});

/**
 * `redis` whose next `eval` after `timeOutNext()` runs in Valkey and then answers as ioredis's
 * command timeout does (fault injection); every other call goes through.
 */
function evalTimingOut(client: Redis) {
  let armed = false;
  const flaky = new Proxy(client, {
    get(target, name, receiver) {
      if (name !== "eval") return Reflect.get(target, name, receiver);
      return async (...args: Parameters<Redis["eval"]>) => {
        const result = await target.eval(...args);
        if (!armed) return result;
        armed = false;
        throw new Error("Command timed out"); // ioredis's commandTimeout, after the script ran
      };
    },
  });
  return { flaky, timeOutNext: () => void (armed = true), fired: () => !armed };
}

// A durability audit paused Valkey past the client's 1 s command timeout: the request was refused
// with 503, yet its commit ran once Valkey caught up, and the session counted the refused items.
test("fault injected (a state commit that runs in Valkey but answers as timed out): the writes are taken back, the next item builds on the state before", async () => {
  const { flaky, timeOutNext, fired } = evalTimingOut(redis);
  const prefix = `${freeDbPrefix()}:`;
  const journal = `${freeDbPrefix()}:journal`;
  const store = valkeyStateStore(flaky, prefix, { journal });
  const s = new Sessionizer(store, ids);
  const first = await s.assign([place("paused", touch(T0, "pageview", "/a"))]);
  await s.settle(first); // its rows "written"
  timeOutNext(); // the commit itself: the reverse that follows goes through
  await expect(s.assign([place("paused", touch(T0 + MIN, "pageview", "/b"))])).rejects.toThrow("Command timed out");
  expect(fired()).toBe(true); // the commit did run
  // Its journal entry goes with it (once the reverse has answered).
  for (let i = 0; i < 50 && (await redis.hlen(journal)) > 0; i++) await Bun.sleep(10);
  expect(await redis.hlen(journal)).toBe(0);
  const third = await s.assign([place("paused", touch(T0 + 2 * MIN, "event"))]);
  expect(third.sessionIds[0]).toBe(first.sessionIds[0]!);
  expect(third.changes[0]!.after).toMatchObject({ pageviews: 1, events: 1, items: 2, exit_path: "/a" });
});

// A request whose rows could not be written takes its commit back (undo). Were that undo to get no
// answer while Valkey is paused, it still runs when Valkey catches up; it used to be followed by
// the commit path's reverse, which then put the refused writes back (the session kept the items of
// a refused request, and its client's retry added them again).
test("fault injected (an undo that runs in Valkey but answers as timed out): the refused writes stay taken back, the journal entry goes", async () => {
  const { flaky, timeOutNext, fired } = evalTimingOut(redis);
  const journal = `${freeDbPrefix()}:journal`;
  const s = new Sessionizer(valkeyStateStore(flaky, `${freeDbPrefix()}:`, { journal }), ids);
  const first = await s.assign([place("undone", touch(T0, "pageview", "/a"))]);
  await s.settle(first);
  const refused = await s.assign([place("undone", touch(T0 + MIN, "pageview", "/b"))]); // its rows "fail"
  timeOutNext(); // the undo itself
  await expect(s.undo(refused)).rejects.toThrow("Command timed out");
  expect(fired()).toBe(true); // the undo did run
  await Bun.sleep(700); // past a retry of the take-back, which must find nothing left to do
  expect(await redis.hlen(journal)).toBe(0);
  const next = await s.assign([place("undone", touch(T0 + 2 * MIN, "event"))]);
  expect(next.sessionIds[0]).toBe(first.sessionIds[0]!);
  expect(next.changes[0]!.after).toMatchObject({ pageviews: 1, events: 1, items: 2, exit_path: "/a" });
});
