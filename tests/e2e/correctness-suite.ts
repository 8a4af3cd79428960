// The correctness property test through the HTTP API, as a suite the e2e test files run: random
// traffic for three services (seeded: fixed in CI, SEED=<n> to replay, SEED=random to explore) goes
// in through the ingest routes of the fully composed service (Valkey for sessions, salts, dedup and
// the cache; the embedded ClickHouse); every number of every query route is then compared with a
// brute-force model that computes the answers from the generated items alone (tests/e2e/model.ts).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startTestService, type TestService } from "../helpers/service.ts";
import { freeDbPrefix } from "../setup/valkey.ts";
import { canonical, Diffs, OneToOne } from "./check.ts";
import { type AgentInfo, type Filters, group, Model, type MSession, type Range, visitorOf } from "./model.ts";
import { prng as rng, testSeed } from "../helpers/seed.ts";
import { DAY, generateTraffic, type GenItem, HOUR, IDLE, IPS, itemBody, MINUTE, type Traffic, USER_AGENTS } from "./traffic.ts";
import { addDays, buckets, dateRange, daysBetween, type Interval, isoWithOffset, localDate, offsetChange, startOfLocalDate } from "./zones.ts";

export interface SuiteOptions {
  /** Name of the seed (SEED=<n> replays it). */
  seedName: string;
  defaultSeed: number;
  /** Items of a person arrive up to this many ms late, out of time order across requests (traffic.ts). */
  lateMs?: number;
}

/**
 * Places where a hashed visitor (no anonymous_id, no client session id) has two consecutive items
 * less than 30 minutes apart on either side of a UTC midnight: one visit, two visitor ids, so two
 * sessions (API.md's daily salt).
 */
function splitAtMidnight(items: readonly GenItem[]): number {
  const byPerson = new Map<string, number[]>();
  for (const it of items) {
    if (it.anonymousId !== undefined || it.sessionId !== undefined) continue;
    const k = `${it.service} ${it.ip}|${it.ua}`;
    byPerson.set(k, [...(byPerson.get(k) ?? []), it.time]);
  }
  let n = 0;
  for (const times of byPerson.values()) {
    times.sort((a, b) => a - b);
    for (let i = 1; i < times.length; i++) {
      if (times[i]! - times[i - 1]! < IDLE && Math.floor(times[i]! / DAY) !== Math.floor(times[i - 1]! / DAY)) n++;
    }
  }
  return n;
}

export function correctnessSuite(opts: SuiteOptions): void {
  const SEED = testSeed(opts.seedName, opts.defaultSeed);
  const NOW = Date.now();
  /** The oldest item: inside the 30 days a secret key may back-fill, with room for the run itself. */
  const START = NOW - 29 * DAY - 12 * HOUR;

  // A zone whose DST change falls inside the window, if any does (late November: New York's end of
  // DST on the first Sunday of November; Europe's is late October, Sydney's and Santiago's are in
  // early October and September, so outside any 30-day window ending in late November).
  const DST_CANDIDATES = ["America/New_York", "Europe/Berlin", "Australia/Sydney", "America/Santiago", "Pacific/Auckland", "America/Havana", "Africa/Casablanca"];
  const DST = (() => {
    for (const tz of DST_CANDIDATES) {
      const at = offsetChange(tz, START + 6 * HOUR, NOW - 6 * HOUR);
      if (at !== undefined) return { tz, at };
    }
    return undefined;
  })();
  const DST_ZONE = DST?.tz ?? "America/New_York";
  console.log(
    DST
      ? `[e2e correctness] DST change in the window: ${DST.tz} at ${new Date(DST.at).toISOString()}`
      : `[e2e correctness] no candidate zone changes DST between ${new Date(START).toISOString()} and now; ${DST_ZONE} is tested without one`,
  );
  const ZONES = ["UTC", DST_ZONE, "Asia/Kolkata"] as const;

  /** Instants worth crowding with sessions: UTC and local midnights, the DST change. */
  function criticalInstants(): number[] {
    const out = new Set<number>();
    for (const tz of ZONES) {
      for (let d = localDate(START, tz); d <= localDate(NOW, tz); d = addDays(d, 1)) out.add(startOfLocalDate(d, tz));
    }
    if (DST) for (const dt of [-HOUR, 0, 30 * MINUTE, HOUR]) out.add(DST.at + dt);
    return [...out].filter((t) => t > START + 2 * HOUR && t < NOW - 3 * HOUR).sort((a, b) => a - b);
  }

  let svc: TestService;
  let admin: string;
  let traffic: Traffic;
  let model: Model;
  const keys: Record<string, string> = {};
  const ingestDiffs = new Diffs();
  const probeAgents = new Map<string, AgentInfo>();
  const countries = new Map<string, string>();
  /** Answers of POST /v1/ingest/session: the session id the service gave each. */
  const sessionAnswers: Array<{ item: GenItem; sessionId: string }> = [];
  const SERVICES: string[] = [];

  // Ids the service makes up, matched to the model's by content.
  const sessionIds = new OneToOne("session");
  const visitorIds = new OneToOne("visitor");
  /** Error fingerprints per service (the same error on two services may share one). */
  const errorGroups = new Map<string, OneToOne>();
  const errorGroupsOf = (service: string) => errorGroups.get(service) ?? errorGroups.set(service, new OneToOne("error group")).get(service)!;

  async function request(path: string, init: { method?: string; key: string; body?: unknown }): Promise<{ status: number; json: any; headers: Headers }> {
    const res = await svc.app.request(path, {
      method: init.method ?? "GET",
      headers: { Authorization: `Bearer ${init.key}`, ...(init.body !== undefined ? { "Content-Type": "application/json" } : {}) },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
    return { status: res.status, json, headers: res.headers };
  }

  async function query(path: string, params: Record<string, string | undefined>): Promise<any> {
    const qs = new URLSearchParams(Object.entries(params).filter((e): e is [string, string] => e[1] !== undefined));
    const res = await request(`${path}?${qs}`, { key: admin });
    if (res.status !== 200) throw new Error(`GET ${path}?${qs} → ${res.status} ${JSON.stringify(res.json)}`);
    return res.json;
  }

  /** Every page of a keyset-paged list. */
  async function allPages(path: string, params: Record<string, string | undefined>): Promise<any[]> {
    const rows: any[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < 200; page++) {
      const body = await query(path, { ...params, cursor });
      rows.push(...body.data);
      if (body.next_cursor === null) return rows;
      cursor = body.next_cursor;
    }
    throw new Error(`${path}: more than 200 pages`);
  }

  // ---------------------------------------------------------------------------------------------
  // Set-up: probe, generate, ingest, flush, model.

  /** Countries of the test IPs and what the service makes of the user agents, read back through the API. */
  async function probe(suffix: string): Promise<void> {
    const service = `e2e-probe-${suffix}`;
    const key = await svc.key({ type: "secret", service_id: service });
    const items = [
      ...IPS.map((ip, i) => ({ type: "pageview", url: "https://probe.example/ip", ip, user_agent: USER_AGENTS[0]!.ua, user_id: `ip ${ip}`, timestamp: NOW - 3 * HOUR + i * 1000 })),
      ...USER_AGENTS.map((u, i) => ({ type: "pageview", url: "https://probe.example/ua", ip: "8.8.4.4", user_agent: u.ua, user_id: `ua ${i}`, timestamp: NOW - 4 * HOUR + i * 1000 })),
    ];
    const res = await request("/v1/ingest/batch", { method: "POST", key, body: { items } });
    if (res.status !== 202 || res.json.accepted !== items.length) throw new Error(`probe ingest: ${res.status} ${JSON.stringify(res.json)}`);
    await svc.flush();
    const rows = await allPages("/v1/sessions", { service_id: service, from: localDate(NOW - DAY, "UTC"), to: localDate(NOW, "UTC"), limit: "1000" });
    for (const row of rows) {
      if (row.user_id.startsWith("ip ")) countries.set(row.user_id.slice(3), row.country);
      else probeAgents.set(USER_AGENTS[Number(row.user_id.slice(3))]!.ua, { device: row.device, browser: row.browser, os: row.os });
    }
    if (countries.size !== IPS.length || probeAgents.size !== USER_AGENTS.length) throw new Error("probe: a probe session is missing");
  }

  async function ingest(): Promise<void> {
    const expectDrops = (where: string, sent: GenItem[], answer: any) => {
      const dropped = sent.flatMap((it, index) => (it.drop ? [{ index, reason: it.drop }] : []));
      ingestDiffs.compare(`${where} dropped`, dropped, (answer.dropped ?? []).map((d: any) => ({ index: d.index, reason: d.reason })));
      const accepted = sent.filter((it) => !it.drop);
      ingestDiffs.compare(`${where} accepted`, accepted.length, answer.accepted);
      const ids: string[] = answer.event_ids ?? [];
      accepted.forEach((it, i) => {
        const id = ids[i];
        if (id === undefined) return;
        if (it.eventId === undefined) it.eventId = id;
        else if (it.eventId.toLowerCase() !== id) ingestDiffs.add(`${where}: event_id ${it.eventId} answered as ${id}`);
      });
    };
    for (const [i, req] of traffic.requests.entries()) {
      const key = keys[req.service]!;
      if (req.kind === "batch") {
        const res = await request("/v1/ingest/batch", { method: "POST", key, body: { items: req.items.map((it) => itemBody(it, true)) } });
        if (res.status !== 202) ingestDiffs.add(`request ${i} (batch of ${req.items.length}): status ${res.status} ${JSON.stringify(res.json)}`);
        else expectDrops(`request ${i} (batch)`, req.items, res.json);
      } else {
        const it = req.item;
        const res = await request(`/v1/ingest/${it.route}`, { method: "POST", key, body: itemBody(it, false) });
        if (res.status !== 202) ingestDiffs.add(`request ${i} (${it.route}): status ${res.status} ${JSON.stringify(res.json)}`);
        else {
          expectDrops(`request ${i} (${it.route})`, [it], res.json);
          if (it.route === "session") sessionAnswers.push({ item: it, sessionId: res.json.session_id });
        }
      }
    }
    // Retries of items already stored: dropped as duplicates, stored once.
    const r = rng(SEED + 1);
    for (const service of SERVICES) {
      const stored = traffic.items.filter((it) => it.service === service && !it.drop && it.route === "batch");
      const again = Array.from({ length: 12 }, () => r.pick(stored)).filter((it, i, all) => all.indexOf(it) === i);
      const res = await request("/v1/ingest/batch", { method: "POST", key: keys[service]!, body: { items: again.map((it) => itemBody(it, true)) } });
      ingestDiffs.compare(`${service} retry status`, 202, res.status);
      ingestDiffs.compare(`${service} retry accepted`, 0, res.json.accepted);
      ingestDiffs.compare(`${service} retry dropped`, again.map((_, index) => ({ index, reason: "duplicate" })), (res.json.dropped ?? []).map((d: any) => ({ index: d.index, reason: d.reason })));
      const single = traffic.items.find((it) => it.service === service && !it.drop && it.route === "pageview");
      if (single) {
        const one = await request("/v1/ingest/pageview", { method: "POST", key: keys[service]!, body: itemBody(single, false) });
        ingestDiffs.compare(`${service} single retry`, { status: 202, accepted: 0, reason: "duplicate" }, { status: one.status, accepted: one.json.accepted, reason: one.json.dropped?.[0]?.reason });
      }
    }
  }

  beforeAll(async () => {
    const started = Date.now();
    svc = await startTestService({ VALKEY_URL: process.env.TEST_VALKEY_URL! });
    const suffix = freeDbPrefix().replace(/_/g, "-");
    admin = await svc.key({ type: "admin", services: ["*"] });
    await probe(suffix);
    traffic = generateTraffic(rng(SEED), { now: NOW, start: START, critical: criticalInstants(), suffix, dstChange: DST?.at, lateMs: opts.lateMs });
    SERVICES.push(...Object.values(traffic.services));
    for (const service of SERVICES) keys[service] = await svc.key({ type: "secret", service_id: service });
    const t0 = Date.now();
    await ingest();
    await svc.flush();
    const accepted = traffic.items.filter((it) => !it.drop);
    model = new Model(accepted, (ip) => countries.get(ip) ?? "?", (ua) => {
      const known = USER_AGENTS.find((u) => u.ua === ua);
      if (!known) throw new Error(`unknown user agent ${ua}`);
      return known;
    });
    console.log(
      `[e2e correctness] ${traffic.items.length} items (${accepted.length} accepted) in ${traffic.requests.length} requests → ${model.sessions.length} sessions; ` +
        `ingest + flush ${Date.now() - t0} ms, set-up ${Date.now() - started} ms`,
    );
  }, 120_000);

  afterAll(async () => {
    await svc?.dispose();
  });

  // ---------------------------------------------------------------------------------------------
  // Ranges and filters.

  interface RangeSpec {
    label: string;
    params: Record<string, string>;
    range: Range;
    previous: Range;
  }

  function dates(label: string, from: string, to: string, tz: string): RangeSpec {
    const days = daysBetween(from, to) + 1;
    return { label, params: { from, to, tz }, range: dateRange(from, to, tz), previous: dateRange(addDays(from, -days), addDays(from, -1), tz) };
  }

  function times(label: string, start: number, end: number, tz: string): RangeSpec {
    // `from` as ISO 8601 with the zone's offset, `to` as epoch milliseconds.
    return { label, params: { from: isoWithOffset(start, tz), to: String(end), tz }, range: { start, end }, previous: { start: start - (end - start), end: start } };
  }

  function rangesFor(tz: string) {
    const today = localDate(NOW, tz);
    const dstDay = DST && tz === DST.tz ? localDate(DST.at, tz) : addDays(today, -19);
    return {
      all: dates("28 days", addDays(today, -27), today, tz),
      twoWeeks: dates("14 days", addDays(today, -13), today, tz),
      dst: dates(tz === DST?.tz ? "the DST change ±1 day" : "3 days", addDays(dstDay, -1), addDays(dstDay, 1), tz),
      time: times("times", NOW - 9 * DAY - 1_234_567, NOW - 2 * DAY + 777, tz),
      day: dates("one day", dstDay, dstDay, tz),
    };
  }

  function topValue(service: string, pick: (s: MSession) => string, rank = 0): string {
    const groups = group(model.sessions.filter((s) => s.service === service && pick(s) !== ""), pick);
    return groups[Math.min(rank, groups.length - 1)]?.[0] ?? "none";
  }

  function filtersFor(service: string): Filters[] {
    const pages = group(model.items.filter((it) => it.service === service && it.type === "pageview"), (it) => it.path);
    return [
      { country: topValue(service, (s) => s.attrs.country) },
      { device: "mobile" },
      { browser: topValue(service, (s) => s.attrs.browser, 1) },
      { os: "iOS" },
      { utm_source: topValue(service, (s) => s.attrs.utm_source) },
      { utm_medium: topValue(service, (s) => s.attrs.utm_medium), utm_campaign: topValue(service, (s) => s.attrs.utm_campaign) },
      { referrer_domain: topValue(service, (s) => s.attrs.referrer_domain) },
      { path: pages[1]?.[0] ?? "/" },
      { device: "desktop", country: topValue(service, (s) => s.attrs.country), path: pages[0]?.[0] ?? "/" },
      { country: "ZZ" },
    ];
  }

  const label = (f: Filters) => (Object.keys(f).length === 0 ? "no filter" : new URLSearchParams(f as Record<string, string>).toString());

  function assertNoDiffs(diffs: Diffs): void {
    if (diffs.count > 0) console.log(diffs.report());
    expect(diffs.list).toEqual([]);
  }

  // ---------------------------------------------------------------------------------------------

  describe("ingest", () => {
    test("every request is answered 202 with the right accepted count, drop reasons and event ids", () => {
      assertNoDiffs(ingestDiffs);
      const reasons = new Set(traffic.items.filter((it) => it.drop).map((it) => it.drop));
      expect([...reasons].sort()).toEqual(["bot", "invalid"]);
    });

    test("user agents read as a dashboard shows them; the probe IPs span many countries", () => {
      const diffs = new Diffs();
      for (const u of USER_AGENTS) diffs.compare(u.ua, { device: u.device, browser: u.browser, os: u.os }, probeAgents.get(u.ua));
      assertNoDiffs(diffs);
      const known = new Set([...countries.values()].filter((c) => c !== ""));
      expect(known.size).toBeGreaterThanOrEqual(10);
      expect(countries.get("203.0.113.50")).toBe("");
    });

    test("the generated traffic has the edge cases it is meant to have", () => {
      const sessions = model.sessions;
      const server = sessions.filter((s) => !s.clientId);
      // Consecutive items of one visitor exactly 30 minutes apart (a new session), or 1 ms less (the same).
      const gap = (ms: number) => {
        let n = 0;
        const byVisitor = new Map<string, MSession[]>();
        for (const s of server) byVisitor.set(s.visitor, [...(byVisitor.get(s.visitor) ?? []), s]);
        for (const list of byVisitor.values()) {
          const times = list.flatMap((s) => s.items.map((i) => i.time)).sort((a, b) => a - b);
          for (let i = 1; i < times.length; i++) if (times[i]! - times[i - 1]! === ms) n++;
        }
        return n;
      };
      const stats = {
        sessions: sessions.length,
        "client session ids": sessions.length - server.length,
        "30:00.000 gaps (split)": gap(30 * MINUTE),
        "29:59.999 gaps (kept)": gap(30 * MINUTE - 1),
        "client sessions across UTC midnight": sessions.filter((s) => s.clientId && localDate(s.start, "UTC") !== localDate(s.end, "UTC")).length,
        "anonymous-id sessions across UTC midnight": server.filter((s) => s.items[0]!.anonymousId && localDate(s.start, "UTC") !== localDate(s.end, "UTC")).length,
        // A hashed visitor's id changes at UTC midnight (daily salt): a visit going on then is two sessions.
        "hashed visits split at UTC midnight": splitAtMidnight(model.items),
        "sessions starting within 2 h of the DST change": DST ? sessions.filter((s) => Math.abs(s.start - DST.at) < 2 * HOUR).length : 0,
        "items ahead of the clock": model.items.filter((i) => i.time > NOW).length,
        bounces: sessions.filter((s) => s.bounce).length,
        converted: sessions.filter((s) => s.converted).length,
        "first item without a URL": sessions.filter((s) => s.items[0]!.url === undefined).length,
        "single-item route items": traffic.items.filter((it) => it.route !== "batch").length,
        "funnel steps sharing a time": model.items.filter((i, k, all) => i.type === "funnel" && all[k - 1]?.time === i.time && all[k - 1]?.type === "funnel").length,
      };
      if (opts.lateMs) {
        // Sessions whose items, as they had arrived after some request, were two or more sessions
        // (a gap of 30 minutes or more) until a later item joined them: the service must merge.
        const arrival = new Map<GenItem, number>();
        traffic.requests.forEach((q, i) => (q.kind === "batch" ? q.items : [q.item]).forEach((it) => arrival.set(it, i)));
        const bridged = server.filter((s) => {
          const byRequest = group(s.items, (it) => String(arrival.get(it)).padStart(8, "0")).sort((a, b) => (a[0] < b[0] ? -1 : 1));
          const seen: number[] = [];
          return byRequest.some(([, its]) => {
            seen.push(...its.map((it) => it.time));
            seen.sort((a, b) => a - b);
            return seen.some((t, k) => k > 0 && t - seen[k - 1]! >= 30 * MINUTE);
          });
        }).length;
        Object.assign(stats, { "sessions bridged by a late item": bridged });
        expect(bridged).toBeGreaterThan(0);
      }
      console.log(`[e2e correctness] ${Object.entries(stats).map(([k, v]) => `${k}: ${v}`).join(", ")}`);
      for (const k of ["client session ids", "30:00.000 gaps (split)", "29:59.999 gaps (kept)", "client sessions across UTC midnight", "hashed visits split at UTC midnight", "items ahead of the clock", "converted", "first item without a URL", "funnel steps sharing a time"] as const) {
        expect({ [k]: stats[k] > 0 }).toEqual({ [k]: true });
      }
      if (DST) {
        expect(stats["sessions starting within 2 h of the DST change"]).toBeGreaterThan(0);
        // The DST day has 23 or 25 local hours.
        const day = localDate(DST.at, DST.tz);
        expect(Math.abs(buckets(startOfLocalDate(day, DST.tz), startOfLocalDate(addDays(day, 1), DST.tz), DST.tz, "hour").length - 24)).toBe(1);
      }
    });
  });

  // ---------------------------------------------------------------------------------------------
  // Session index: match the service's sessions to the model's by content (service + start time,
  // unique by construction) and learn the ids the service chose.

  let indexed: Diffs | undefined;
  async function sessionIndex(): Promise<Diffs> {
    if (indexed) return indexed;
    const diffs = new Diffs();
    const dump: unknown[] = [];
    for (const service of SERVICES) {
      // To the day of the service's last item, not of NOW: the live visitors' items reach up to 4
      // minutes ahead of NOW, so past UTC midnight when the run starts just before it.
      const last = Math.max(...traffic.items.filter((it) => it.service === service).map((it) => it.time));
      const rows = await allPages("/v1/sessions", { service_id: service, from: localDate(START, "UTC"), to: localDate(Math.max(NOW, last), "UTC"), limit: "1000" });
      const byStart = new Map<number, any>();
      for (const row of rows) {
        const t = Date.parse(row.started_at);
        if (byStart.has(t)) diffs.add(`${service}: two sessions start at ${row.started_at}`);
        byStart.set(t, row);
      }
      for (const s of model.sessions.filter((x) => x.service === service)) {
        const row = byStart.get(s.start);
        if (!row) {
          diffs.add(`${service}: no session starts at ${new Date(s.start).toISOString()} (model: ${s.items.length} items of ${s.visitor}${s.clientId ? `, client id ${s.clientId}` : ""})`);
          continue;
        }
        byStart.delete(s.start);
        if (s.clientId !== undefined && row.session_id !== s.clientId) diffs.add(`${service}: session ${s.clientId} has id ${row.session_id}`);
        sessionIds.pair(s.key, row.session_id, diffs, `${service} session at ${row.started_at}`);
        visitorIds.pair(s.visitor, row.visitor_id, diffs, `${service} session at ${row.started_at}`);
        // A client-kept anonymous_id is the visitor id, as sent (model key "<service> a:<id>").
        const anonymous = s.visitor.slice(service.length + 1);
        if (anonymous.startsWith("a:") && row.visitor_id !== anonymous.slice(2)) diffs.add(`${service} session at ${row.started_at}: visitor_id ${row.visitor_id}, sent anonymous_id ${anonymous.slice(2)}`);
      }
      for (const row of byStart.values()) diffs.add(`${service}: unexpected session ${JSON.stringify(row)}`);
      dump.push({ service, rows });
    }
    if (process.env.E2E_DUMP) {
      // Everything needed to investigate a difference: the generated items, the model's sessions, the service's.
      const sessions = model.sessions.map(({ items, viewedPaths, ...s }) => ({ ...s, items: items.map((i) => i.n) }));
      await Bun.write(process.env.E2E_DUMP, JSON.stringify({ seed: SEED, now: NOW, items: traffic.items, requests: traffic.requests.map((q) => (q.kind === "batch" ? q.items.map((i) => i.n) : q.item.n)), sessions, service: dump }, null, 1));
      console.log(`[e2e correctness] dumped to ${process.env.E2E_DUMP}`);
    }
    indexed = diffs;
    return diffs;
  }

  function expectedSessionRow(s: MSession, actual: any, diffs: Diffs, where: string) {
    const id = sessionIds.forward.get(s.key);
    if (id === undefined) sessionIds.pair(s.key, actual?.session_id, diffs, where);
    visitorIds.pair(s.visitor, actual?.visitor_id, diffs, where);
    return {
      session_id: s.clientId ?? sessionIds.forward.get(s.key),
      visitor_id: visitorIds.forward.get(s.visitor),
      user_id: s.userId,
      started_at: new Date(s.start).toISOString(),
      ended_at: new Date(s.end).toISOString(),
      duration_s: (s.end - s.start) / 1000,
      pageviews: s.pageviews,
      events: s.events,
      is_bounce: s.bounce,
      converted: s.converted,
      entry_path: s.entryPath,
      exit_path: s.exitPath,
      referrer: s.referrer,
      utm_source: s.attrs.utm_source,
      utm_medium: s.attrs.utm_medium,
      utm_campaign: s.attrs.utm_campaign,
      device: s.attrs.device,
      browser: s.attrs.browser,
      os: s.attrs.os,
      country: s.attrs.country,
    };
  }

  function compareSessionList(where: string, expected: MSession[], actual: any[], diffs: Diffs): void {
    diffs.compare(`${where} count`, expected.length, actual.length);
    const byStart = new Map(actual.map((row) => [row.started_at as string, row]));
    if (byStart.size !== actual.length) diffs.add(`${where}: a session appears twice`);
    for (const [i, s] of expected.entries()) {
      const row = byStart.get(new Date(s.start).toISOString());
      if (!row) {
        diffs.add(`${where}: missing the session started ${new Date(s.start).toISOString()} (${s.visitor})`);
        continue;
      }
      if (actual[i] !== row) diffs.add(`${where}: session started ${row.started_at} at position ${actual.indexOf(row)}, expected ${i} (newest first)`);
      diffs.compare(`${where} session ${row.started_at}`, expectedSessionRow(s, row, diffs, where), row);
    }
  }

  describe("GET /v1/sessions", () => {
    test("the service's sessions are the model's sessions (matched by start), ids one-to-one", async () => {
      assertNoDiffs(await sessionIndex());
    });

    for (const key of ["shop", "blog", "app"]) {
      test(`${key}: every field of every session, all pages, with filters and small pages in other zones`, async () => {
        await sessionIndex();
        const service = traffic.services[key]!;
        const diffs = new Diffs();
        const utc = rangesFor("UTC");
        compareSessionList(`${key} 28 days UTC`, model.sessionList(service, utc.all.range, {}), await allPages("/v1/sessions", { service_id: service, ...utc.all.params, limit: "1000" }), diffs);
        for (const tz of ZONES.slice(1)) {
          const r = rangesFor(tz);
          for (const spec of [r.twoWeeks, r.time]) {
            const rows = await allPages("/v1/sessions", { service_id: service, ...spec.params, limit: "37" });
            compareSessionList(`${key} ${spec.label} ${tz} limit 37`, model.sessionList(service, spec.range, {}), rows, diffs);
          }
        }
        for (const f of filtersFor(service).filter((_, i) => i % 2 === 0 || i === 7)) {
          const rows = await allPages("/v1/sessions", { service_id: service, ...utc.all.params, ...f, limit: "100" });
          compareSessionList(`${key} 28 days UTC ${label(f)}`, model.sessionList(service, utc.all.range, f), rows, diffs);
        }
        // POST /v1/ingest/session answered with the id of the session its item is in. (With late
        // items, that session may since have been merged into an earlier one: its id is an alias then.)
        for (const { item, sessionId } of opts.lateMs ? [] : sessionAnswers.filter((a) => a.item.service === service)) {
          const s = model.sessionOf.get(item)!;
          diffs.compare(`${key} /v1/ingest/session answer for the item at ${new Date(item.time).toISOString()}`, s.clientId ?? sessionIds.forward.get(s.key), sessionId);
        }
        assertNoDiffs(diffs);
      }, 60_000);
    }
  });

  // ---------------------------------------------------------------------------------------------

  function canonicalStats(x: any) {
    const byValue = (rows: any[]) => canonical(rows, (r) => r.sessions, (r) => r.value);
    return {
      ...x,
      distributions: Object.fromEntries(Object.entries(x.distributions ?? {}).map(([k, rows]) => [k, byValue(rows as any[])])),
      utm: canonical(x.utm ?? [], (r: any) => r.sessions, (r: any) => `${r.utm_source}\u0000${r.utm_medium}\u0000${r.utm_campaign}`),
    };
  }

  async function checkStats(diffs: Diffs, service: string, spec: RangeSpec, tz: string, interval: Interval, f: Filters): Promise<void> {
    const where = `${service} stats ${spec.label} ${tz} ${interval} ${label(f)}`;
    const actual = await query("/v1/sessions/stats", { service_id: service, ...spec.params, interval, ...f });
    const expected = model.stats(service, spec.range, spec.previous, tz, interval, f);
    for (const [dim, rows] of Object.entries(actual.distributions ?? {})) diffs.ordered(`${where} distributions.${dim}`, rows as any[], (r) => r.sessions);
    diffs.ordered(`${where} utm`, actual.utm ?? [], (r: any) => r.sessions);
    diffs.compare(where, expected, canonicalStats(actual));
  }

  describe("GET /v1/sessions/stats", () => {
    for (const key of ["shop", "blog", "app"]) {
      for (const tz of ZONES) {
        test(`${key} in ${tz}: totals, previous, series by hour/day/week/month, distributions, utm`, async () => {
          const service = traffic.services[key]!;
          const r = rangesFor(tz);
          const diffs = new Diffs();
          const plan: Array<[RangeSpec, Interval]> = [
            [r.all, "day"], [r.all, "week"], [r.all, "month"], [r.twoWeeks, "day"], [r.dst, "hour"], [r.time, "day"], [r.time, "hour"], [r.day, "hour"],
          ];
          await Promise.all(plan.map(([spec, interval]) => checkStats(diffs, service, spec, tz, interval, {})));
          assertNoDiffs(diffs);
        }, 60_000);
      }

      test(`${key}: with filters (country, device, browser, os, utm_*, referrer_domain, path, combined, none matching)`, async () => {
        const service = traffic.services[key]!;
        const diffs = new Diffs();
        const checks: Array<Promise<void>> = [];
        for (const f of filtersFor(service)) {
          const utc = rangesFor("UTC");
          const kolkata = rangesFor("Asia/Kolkata");
          checks.push(checkStats(diffs, service, utc.all, "UTC", "day", f));
          checks.push(checkStats(diffs, service, kolkata.twoWeeks, "Asia/Kolkata", "week", f));
        }
        const dst = rangesFor(DST_ZONE);
        checks.push(checkStats(diffs, service, dst.dst, DST_ZONE, "hour", filtersFor(service)[1]!));
        await Promise.all(checks);
        assertNoDiffs(diffs);
      }, 60_000);
    }

    test("the default range is the last 7 local days", async () => {
      const service = traffic.services.shop!;
      const today = localDate(Date.now(), "UTC");
      const actual = await query("/v1/sessions/stats", { service_id: service });
      if (localDate(Date.now(), "UTC") !== today) return; // the run crossed midnight
      const spec = dates("default", addDays(today, -6), today, "UTC");
      const diffs = new Diffs();
      diffs.compare("default range", model.stats(service, spec.range, spec.previous, "UTC", "day", {}), canonicalStats(actual));
      assertNoDiffs(diffs);
    });
  });

  // ---------------------------------------------------------------------------------------------

  async function checkBehavior(diffs: Diffs, service: string, spec: RangeSpec, tz: string, f: Filters, useDate = false): Promise<any> {
    const where = `${service} behavior ${spec.label} ${tz} ${label(f)}`;
    const params = useDate ? { date: spec.params.from, tz } : spec.params;
    const actual = await query("/v1/behavior/summary", { service_id: service, ...params, ...f, limit: "100" });
    const expected = model.behavior(service, spec.range, f, 100);
    for (const [list, count] of [["top_pages", "views"], ["entry_pages", "sessions"], ["exit_pages", "sessions"], ["top_events", "count"], ["top_referrers", "sessions"], ["top_errors", "count"]] as const) {
      diffs.ordered(`${where} ${list}`, actual[list] ?? [], (row: any) => row[count]);
    }
    // Errors: the service's fingerprints are matched to the model's groups by last_seen (item
    // times are unique within a service), and must be one-to-one across every answer.
    const errorsByLastSeen = new Map<string, any>((actual.top_errors ?? []).map((e: any) => [e.last_seen, e]));
    const errors = expected.top_errors.map((e) => {
      const row = errorsByLastSeen.get(e.last_seen);
      if (row) errorGroupsOf(service).pair(e.group, row.fingerprint, diffs, where);
      return { fingerprint: errorGroupsOf(service).forward.get(e.group) ?? `(group ${e.group})`, message: e.message, count: e.count, sessions: e.sessions, last_seen: e.last_seen };
    });
    diffs.compare(where, {
      ...expected,
      top_errors: canonical(errors, (e) => e.count, (e) => e.last_seen),
    }, {
      ...actual,
      top_pages: canonical(actual.top_pages ?? [], (r: any) => r.views, (r: any) => r.path),
      entry_pages: canonical(actual.entry_pages ?? [], (r: any) => r.sessions, (r: any) => r.path),
      exit_pages: canonical(actual.exit_pages ?? [], (r: any) => r.sessions, (r: any) => r.path),
      top_events: canonical(actual.top_events ?? [], (r: any) => r.count, (r: any) => r.name),
      top_referrers: canonical(actual.top_referrers ?? [], (r: any) => r.sessions, (r: any) => r.referrer_domain),
      top_errors: canonical(actual.top_errors ?? [], (r: any) => r.count, (r: any) => r.last_seen),
    });
    return actual;
  }

  describe("GET /v1/behavior/summary", () => {
    for (const key of ["shop", "blog", "app"]) {
      test(`${key}: sessions, pages, entry/exit, events, referrers, Web Vitals, errors in three zones`, async () => {
        const service = traffic.services[key]!;
        const diffs = new Diffs();
        const checks: Array<Promise<unknown>> = [];
        for (const tz of ZONES) {
          const r = rangesFor(tz);
          checks.push(checkBehavior(diffs, service, r.all, tz, {}), checkBehavior(diffs, service, r.twoWeeks, tz, {}), checkBehavior(diffs, service, r.time, tz, {}));
          checks.push(checkBehavior(diffs, service, r.day, tz, {}, true));
        }
        await Promise.all(checks);
        assertNoDiffs(diffs);
      }, 60_000);

      test(`${key}: with filters, and the default 10 rows`, async () => {
        const service = traffic.services[key]!;
        const diffs = new Diffs();
        const utc = rangesFor("UTC");
        const fs = filtersFor(service);
        await Promise.all([fs[0]!, fs[1]!, fs[4]!, fs[6]!, fs[7]!, fs[8]!].map((f) => checkBehavior(diffs, service, utc.all, "UTC", f)));
        const full = await query("/v1/behavior/summary", { service_id: service, ...utc.all.params, limit: "100" });
        const top10 = await query("/v1/behavior/summary", { service_id: service, ...utc.all.params });
        for (const list of ["top_pages", "entry_pages", "exit_pages", "top_events", "top_referrers", "top_errors"]) {
          diffs.compare(`${key} default limit ${list}`, full[list].slice(0, 10), top10[list]);
        }
        assertNoDiffs(diffs);
      }, 60_000);
    }
  });

  // ---------------------------------------------------------------------------------------------

  function expectedEvent(it: GenItem, diffs: Diffs, where: string, actual: any) {
    const s = model.sessionOf.get(it)!;
    if (!visitorIds.forward.has(visitorOf(it)) && actual) visitorIds.pair(visitorOf(it), actual.visitor_id, diffs, where);
    return {
      event_id: it.eventId!.toLowerCase(),
      name: it.name,
      timestamp: new Date(it.time).toISOString(),
      session_id: s.clientId ?? sessionIds.forward.get(s.key),
      visitor_id: visitorIds.forward.get(visitorOf(it)),
      user_id: it.userId ?? "",
      url: it.url ?? "",
      path: it.path,
      properties: it.properties ?? {},
    };
  }

  function compareEvents(where: string, expected: GenItem[], actual: any[], diffs: Diffs): void {
    diffs.compare(`${where} count`, expected.length, actual.length);
    const n = Math.min(expected.length, actual.length);
    for (let i = 0; i < n; i++) {
      const it = expected[i]!;
      const row = actual[i];
      diffs.compare(`${where}[${i}]`, expectedEvent(it, diffs, where, row.event_id === it.eventId!.toLowerCase() ? row : undefined), row);
    }
  }

  describe("GET /v1/events", () => {
    for (const key of ["shop", "blog", "app"]) {
      test(`${key}: every event, all pages, filters by name, session_id, user_id and session attributes`, async () => {
        await sessionIndex();
        const service = traffic.services[key]!;
        const diffs = new Diffs();
        const utc = rangesFor("UTC");
        compareEvents(`${key} events 28 days UTC`, model.events(service, utc.all.range, {}, {}), await allPages("/v1/events", { service_id: service, ...utc.all.params, limit: "250" }), diffs);
        const kolkata = rangesFor("Asia/Kolkata");
        compareEvents(`${key} events 14 days Kolkata limit 41`, model.events(service, kolkata.twoWeeks.range, {}, {}), await allPages("/v1/events", { service_id: service, ...kolkata.twoWeeks.params, limit: "41" }), diffs);
        const events = model.events(service, utc.all.range, {}, {});
        const name = group(events, (e) => e.name!)[1]?.[0] ?? "none";
        compareEvents(`${key} events name=${name}`, model.events(service, utc.all.range, {}, { name }), await allPages("/v1/events", { service_id: service, ...utc.all.params, name, limit: "1000" }), diffs);
        const user = group(events.filter((e) => e.userId), (e) => e.userId!)[0]?.[0] ?? "nobody";
        compareEvents(`${key} events user_id=${user}`, model.events(service, utc.all.range, {}, { userId: user }), await allPages("/v1/events", { service_id: service, ...utc.all.params, user_id: user, limit: "1000" }), diffs);
        const withEvents = group(events, (e) => model.sessionOf.get(e)!.key).map(([k]) => model.sessions.find((s) => s.key === k)!);
        for (const s of [withEvents.find((x) => x.clientId), withEvents.find((x) => !x.clientId)]) {
          if (!s) continue;
          const id = s.clientId ?? sessionIds.forward.get(s.key) ?? "unknown";
          compareEvents(`${key} events session_id=${id}`, model.events(service, utc.all.range, {}, { sessionKey: s.key }), await allPages("/v1/events", { service_id: service, ...utc.all.params, session_id: id }), diffs);
        }
        for (const f of [filtersFor(service)[1]!, filtersFor(service)[7]!, filtersFor(service)[4]!]) {
          compareEvents(`${key} events ${label(f)}`, model.events(service, utc.all.range, f, {}), await allPages("/v1/events", { service_id: service, ...utc.all.params, ...f, limit: "1000" }), diffs);
        }
        assertNoDiffs(diffs);
      }, 60_000);
    }
  });

  // ---------------------------------------------------------------------------------------------

  describe("GET /v1/funnels/:name", () => {
    const FUNNELS: Record<string, string[]> = { shop: ["checkout"], blog: ["newsletter"], app: ["onboarding", "upgrade"] };
    for (const key of ["shop", "blog", "app"]) {
      test(`${key}: by session and by visitor, several windows, zones and filters`, async () => {
        const service = traffic.services[key]!;
        const diffs = new Diffs();
        const utc = rangesFor("UTC");
        const kolkata = rangesFor("Asia/Kolkata");
        const checks: Array<Promise<void>> = [];
        const check = (name: string, spec: RangeSpec, by: "session" | "visitor", window: number | undefined, f: Filters) =>
          checks.push((async () => {
            const actual = await query(`/v1/funnels/${name}`, { service_id: service, ...spec.params, by, window: window === undefined ? undefined : String(window), ...f });
            diffs.compare(`${key} funnel ${name} ${spec.label} ${spec.params.tz} by ${by} window ${window ?? "default"} ${label(f)}`, model.funnel(service, name, spec.range, f, window ?? 86_400, by), actual);
          })());
        for (const name of FUNNELS[key]!) {
          for (const by of ["session", "visitor"] as const) {
            for (const window of [undefined, 60, 600, 7 * 86_400]) check(name, utc.all, by, window, {});
            check(name, kolkata.twoWeeks, by, undefined, {});
          }
          check(name, utc.all, "session", undefined, filtersFor(service)[1]!);
          check(name, utc.all, "visitor", 3600, filtersFor(service)[0]!);
          check(name, utc.time, "session", undefined, {});
        }
        check("no-such-funnel", utc.all, "session", undefined, {});
        await Promise.all(checks);
        assertNoDiffs(diffs);
      }, 60_000);
    }

    test("cached answers say so and equal the computed ones", async () => {
      const service = traffic.services.app!;
      const utc = rangesFor("UTC");
      const params = new URLSearchParams({ service_id: service, ...utc.twoWeeks.params, by: "visitor" });
      const first = await request(`/v1/funnels/onboarding?${params}`, { key: admin });
      const second = await request(`/v1/funnels/onboarding?${params}`, { key: admin });
      expect(first.headers.get("x-cache")).toBe("MISS");
      expect(second.headers.get("x-cache")).toBe("HIT");
      expect(second.json).toEqual(first.json);
    });
  });
}
