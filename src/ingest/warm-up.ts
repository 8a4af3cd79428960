// Rebuilds ingest state from ClickHouse: after a restart when it is in process, and when Valkey
// lost it (valkeyWarmGuard). Two things: the event ids seen recently, so client retries stay
// duplicates, and the state of recently active sessions, so a session that was going on when the
// process stopped goes on instead of starting anew.
import type { ClickHouseClient } from "@clickhouse/client-web";
import type Redis from "ioredis";
import type { Spool } from "../spool/spool.ts";
import { DEDUP_WINDOW_MS, type EventDedup } from "./dedup.ts";
import { DAY_MS, utcDay } from "../iso-time.ts";
import { decodeRecord } from "./rows.ts";
import { ITEM_TABLES } from "./stored-ids.ts";
import { mergeSpans, updateSpans, type SessionSpan, type SessionState } from "./sessions/session-state.ts";
import { type MergedMarker, STATE_TTL_MS } from "./sessions/sessionizer.ts";
import type { SeedEntry, StateStore } from "./sessions/state-store.ts";

const MAX_IDS = 2_000_000;

/**
 * The columns of a stored session state the warm-up reads, in order: rows come as JSON arrays
 * (JSONCompactEachRow) with times as epoch ms. On 500k recent sessions in process, keyed rows
 * with ISO times were 313 MB that took the engine ~8 s to write out; these are 123 MB and ~3 s
 * (`bench/RESULTS.md`, 2026-11-30 02:30).
 */
const SESSION_COLUMNS = [
  "service_id", "session_id", "visitor_id", "user_id", "started_at", "ended_at", "pageviews", "events", "items",
  "converted", "entry_path", "exit_path", "exit_at", "version", "hostname", "referrer", "referrer_domain",
  "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "device", "browser", "os", "country",
  "screen_width", "screen_height", "language", "timezone", "client_kept",
] as const;
const TIME_COLUMNS: ReadonlySet<string> = new Set(["started_at", "ended_at", "exit_at"]);
type SessionRow = [
  service_id: string, session_id: string, visitor_id: string, user_id: string, started_at: number, ended_at: number,
  pageviews: number, events: number, items: number, converted: number, entry_path: string, exit_path: string,
  exit_at: number, version: number, hostname: string, referrer: string, referrer_domain: string, utm_source: string,
  utm_medium: string, utm_campaign: string, utm_term: string, utm_content: string, device: string, browser: string,
  os: string, country: string, screen_width: number, screen_height: number, language: string, timezone: string,
  client_kept: number,
];
const SESSION_SELECT = SESSION_COLUMNS.map((c) => (TIME_COLUMNS.has(c) ? `toUnixTimestamp64Milli(${c})` : c)).join(", ");

/** Loads recent event ids into `dedup` and recent session states into `store`. */
export async function warmUp(client: ClickHouseClient, store: StateStore, dedup: EventDedup): Promise<{ eventIds: number; sessions: number }> {
  const idQuery = ITEM_TABLES.map(
    (t) => `SELECT concat(service_id, ':', toString(event_id)) AS k, received_at FROM ${t} WHERE received_at > now64(3) - toIntervalMillisecond({window:UInt64})`,
  ).join(" UNION ALL ");
  // As tab-separated lines: a key (`[a-z0-9_-]` service id, ':', a UUID) needs no escaping, and
  // splitting the text costs less than parsing it as JSON (1M ids in process: ~1.5 against ~2.2 s).
  const text = await (await client.query({
    query: `SELECT k FROM (${idQuery}) ORDER BY received_at DESC LIMIT {max:UInt32}`,
    query_params: { window: DEDUP_WINDOW_MS, max: MAX_IDS },
    format: "TabSeparated",
  })).text();
  const ids = text === "" ? [] : text.slice(0, text.endsWith("\n") ? -1 : undefined).split("\n");
  await dedup.remember(ids);

  // The latest state of each session changed within the state TTL (cancelled states collapse),
  // streamed: rows are turned into states while the engine writes out the rest (500k sessions in
  // process: ~3.9 s against ~5.5 s read whole).
  const result = await client.query({
    query: `SELECT ${SESSION_SELECT} FROM sessions FINAL
            WHERE sign = 1 AND (service_id, session_id) IN (
              SELECT service_id, session_id FROM sessions WHERE updated_at > now64(3) - toIntervalMillisecond({ttl:UInt64}))`,
    query_params: { ttl: STATE_TTL_MS },
    format: "JSONCompactEachRow",
    clickhouse_settings: { wait_end_of_query: 0 },
  });
  const states: SessionState[] = [];
  for await (const rows of result.stream<SessionRow>()) for (const row of rows) states.push(toState(row.json()));
  // The ids merged into each of them (a later merge must repoint those aliases too).
  const aliasRows = states.length === 0 ? [] : await (await client.query({
    query: `SELECT service_id, canonical, groupArray(alias) AS aliases FROM (
              SELECT service_id, alias, argMax(canonical, version) AS canonical FROM session_aliases
              WHERE (service_id, alias) IN (SELECT service_id, alias FROM session_aliases WHERE (service_id, canonical) IN (
                SELECT service_id, session_id FROM sessions WHERE updated_at > now64(3) - toIntervalMillisecond({ttl:UInt64})))
              GROUP BY service_id, alias)
            GROUP BY service_id, canonical`,
    query_params: { ttl: STATE_TTL_MS },
    format: "JSONEachRow",
  })).json<{ service_id: string; canonical: string; aliases: string[] }>();
  const merged = new Map(aliasRows.map((a) => [`${a.service_id}:${a.canonical}`, a.aliases.sort()]));
  const userTimes = await latestUserItems(client, states, merged);
  const spans = new Map<string, SessionSpan[]>();
  const writes: SeedEntry[] = [];
  const now = Date.now(); // the states below live STATE_TTL_MS from this commit, and so do their spans
  for (const state of states) {
    const key = `${state.service_id}:${state.session_id}`;
    const aliases = merged.get(key);
    if (aliases) state.merged = aliases;
    // Each id merged into it names it, as the live service left it: an item sent with such an id
    // (a tracker keeps the id the session route answered) goes on this session after a restart
    // too (an audit: it opened a new session under the old id).
    for (const alias of aliases ?? []) writes.push({ key: `s:${state.service_id}:${alias}`, value: { merged_into: state.session_id } satisfies MergedMarker });
    const userAt = userTimes.get(key);
    if (userAt !== undefined) state.user_at = userAt;
    writes.push({ key: `s:${key}`, value: state });
    // Filed where the live service filed it: under its visitor id (the 30-minute rule places an
    // item only among its own visitor id's sessions); a session the client keeps by its own id
    // under none.
    if (state.client) continue;
    const vKey = `v:${state.service_id}:${state.visitor_id}`;
    spans.set(vKey, updateSpans(spans.get(vKey) ?? [], state, now, STATE_TTL_MS));
  }
  // A span list that live traffic wrote since Valkey lost its data gets these spans added.
  for (const [key, value] of spans) writes.push({ key, value, merge: (live) => mergeSpans(live as SessionSpan[], value) });
  // Each state only where absent: a shared store (Valkey) that lost its data may already hold new
  // state written by live traffic since, which wins.
  await store.seed(writes, STATE_TTL_MS);
  return { eventIds: ids.length, sessions: states.length };
}

/**
 * For each session among `states` with a user id, the time of its latest item with one (its own
 * items and those of sessions merged into it): what the live state held (SessionState.user_at)
 * and the session row does not keep, so that a late item with an earlier time does not replace
 * the user id (applyTouch), after a restart either.
 */
async function latestUserItems(client: ClickHouseClient, states: readonly SessionState[], merged: ReadonlyMap<string, string[]>): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const wanted = states.filter((r) => r.user_id !== "");
  for (let i = 0; i < wanted.length; i += 5_000) {
    const part = wanted.slice(i, i + 5_000);
    const owner = new Map<string, SessionState>(); // service:session id of an item → its session
    const days = new Set<string>();
    for (const r of part) {
      for (const id of [r.session_id, ...(merged.get(`${r.service_id}:${r.session_id}`) ?? [])]) owner.set(`${r.service_id}:${id}`, r);
      for (let d = Math.floor(r.started_at / DAY_MS); d <= Math.floor(r.ended_at / DAY_MS); d++) days.add(utcDay(d * DAY_MS));
    }
    const where = "service_id IN {services:Array(String)} AND toDate(timestamp) IN {days:Array(Date)} AND session_id IN {ids:Array(String)} AND user_id != ''";
    const found = await (await client.query({
      query: `SELECT service_id, session_id, toUnixTimestamp64Milli(max(timestamp))
              FROM (${ITEM_TABLES.map((t) => `SELECT service_id, session_id, timestamp FROM ${t} WHERE ${where}`).join(" UNION ALL ")})
              GROUP BY service_id, session_id`,
      query_params: {
        services: [...new Set(part.map((r) => r.service_id))],
        days: [...days],
        ids: [...new Set([...owner.keys()].map((k) => k.slice(k.indexOf(":") + 1)))],
      },
      format: "JSONCompactEachRow",
    })).json<[string, string, number | string]>();
    for (const [service, session, userAt] of found) {
      const r = owner.get(`${service}:${session}`);
      if (!r) continue;
      const key = `${r.service_id}:${r.session_id}`;
      out.set(key, Math.max(out.get(key) ?? 0, Number(userAt)));
    }
  }
  return out;
}

/** Set (without expiry) in Valkey once its ingest state has been warmed up from ClickHouse. */
export const WARM_MARKER = "analytics:state-warm";

/**
 * With Valkey, session states and event-id claims live there, shared by every instance, and
 * survive a restart of the service, not a loss of Valkey's data (a restart without persistence,
 * FLUSHDB, eviction under maxmemory). A marker key tells: when it is missing, the state is rebuilt
 * from ClickHouse as a restarted in-process service does (`warm`), then the marker is set. Checked
 * at start, every `intervalMs` and at once on `recheck` (the client connected again: Valkey may
 * have restarted empty); several instances may warm up at once (writes go only where keys are
 * absent). Items that arrive between a loss without a reconnect (FLUSHDB, eviction) and the next
 * check can still start a new session or be stored twice: the window is the interval.
 */
export function valkeyWarmGuard(
  redis: Pick<Redis, "exists" | "set">,
  warm: () => Promise<unknown>,
  opts: { intervalMs?: number; onError: (err: unknown) => void; onChecked?: () => void; onRebuilt?: () => void; before?: () => Promise<void> },
): { check(): Promise<boolean>; recheck(): Promise<boolean>; stop(): void } {
  let running: Promise<boolean> | undefined;
  // Bumped by recheck: a check that began before it read a Valkey that may since have been
  // replaced, so it must not be the one that says the state is there.
  let epoch = 0;
  const check = () => (running ??= (async () => {
    const begun = epoch;
    await opts.before?.();
    if ((await redis.exists(WARM_MARKER)) === 1) {
      if (begun === epoch) opts.onChecked?.();
      return false;
    }
    await warm();
    // Valkey went away during the rebuild: part of it may have gone to the one that is gone, so
    // no marker; the recheck that bumped the epoch runs next and rebuilds again.
    if (begun !== epoch) return false;
    await redis.set(WARM_MARKER, new Date().toISOString());
    opts.onRebuilt?.();
    opts.onChecked?.();
    return true;
  })().finally(() => (running = undefined)));
  const recheck = () => {
    epoch++;
    return (running ?? Promise.resolve(false)).catch(() => false).then(check);
  };
  const timer = setInterval(() => void check().catch(opts.onError), opts.intervalMs ?? 5_000);
  (timer as { unref?: () => void }).unref?.();
  return { check, recheck, stop: () => clearInterval(timer) };
}

function toState(r: SessionRow): SessionState {
  const [
    service_id, session_id, visitor_id, user_id, started_at, ended_at, pageviews, events, items, converted,
    entry_path, exit_path, exit_at, version, hostname, referrer, referrer_domain, utm_source, utm_medium,
    utm_campaign, utm_term, utm_content, device, browser, os, country, screen_width, screen_height, language,
    timezone, client_kept,
  ] = r;
  return {
    service_id, session_id, visitor_id, user_id, started_at, ended_at, pageviews, events, items,
    converted: converted === 1, entry_path, entry_at: started_at, exit_path, exit_at, version,
    ...(client_kept === 1 ? { client: true as const } : {}),
    attrs: {
      hostname, referrer, referrer_domain, utm_source, utm_medium, utm_campaign, utm_term, utm_content,
      device, browser, os, country, screen_width, screen_height, language, timezone,
    },
  };
}

/**
 * An item row's event id: its second value (ingest/rows.ts ROW_COLUMNS; the service id before it
 * holds no quote), or in the object rows of earlier versions the value of "event_id".
 */
const EVENT_ID = /^\["[^"]*","([^"]+)"|"event_id":"([^"]+)"/;

/** `service:event_id` of the item rows in spool records (session and alias rows carry no event id). */
export function spooledEventKeys(records: readonly Uint8Array[]): string[] {
  const decoder = new TextDecoder();
  const keys: string[] = [];
  for (const bytes of records) {
    // A spool record holds one request's rows, one per line (writers.ts).
    for (const line of decoder.decode(bytes).split("\n")) {
      const { table, serviceId, json } = decodeRecord(line);
      if (!(ITEM_TABLES as readonly string[]).includes(table)) continue;
      const match = EVENT_ID.exec(json);
      const id = match?.[1] ?? match?.[2];
      if (id) keys.push(`${serviceId}:${id}`);
    }
  }
  return keys;
}

/** Marks the event ids of spool records as stored. */
async function rememberRecords(records: readonly Uint8Array[], dedup: EventDedup): Promise<number> {
  const keys = spooledEventKeys(records);
  for (let i = 0; i < keys.length; i += 10_000) await dedup.remember(keys.slice(i, i + 10_000));
  return keys.length;
}

/**
 * Marks the event ids in the segments a previous process left in the spool as stored. With Valkey,
 * event-id claims outlive a killed process: one that died after writing rows to the spool and
 * before confirming their claims left them pending, and once those expire a client retry would be
 * stored a second time. Call it before the batcher starts (it reads the sealed segments).
 */
export async function rememberSpooled(spool: Spool, dedup: EventDedup): Promise<number> {
  let total = 0;
  for (const ref of spool.sealedSegments()) total += await rememberRecords(await spool.readSegment(ref), dedup);
  return total;
}

/** Whether ingest may take items: its state has been rebuilt (see openWhenWarm). */
export interface IngestWarmth {
  ready(): boolean;
  stop(): void;
}

interface WarmOptions {
  warm: () => Promise<void>;
  /** With `on`/`off`, a reconnect (its "ready" event) refuses items until the marker is checked. */
  redis?: Pick<Redis, "exists" | "set"> & Partial<Pick<Redis, "on" | "off">>;
  onError: (err: unknown) => void;
  /** Told when Valkey held no state and it was rebuilt (at start, on a reconnect or a timed check). */
  onRebuilt?: () => void;
  /** Told each time ingest may take items again (a check or a rebuild succeeded). */
  onReady?: () => void;
  /**
   * With Valkey: must succeed once before ingest takes items (journal-recovery.ts: this instance's
   * commits whose rows a crash kept from being written are taken back); retried with the check.
   */
  recover?: () => Promise<void>;
  /** How often to retry (and, with Valkey, to check its marker); default 5 s. */
  retryMs?: number;
}

/**
 * Runs `warm` (which rebuilds the state with warmUp) until it has succeeded, and says meanwhile
 * that ingest must refuse items: placed on an empty state they would split sessions and let
 * retries of stored events in twice.
 * - Without Valkey (state in process): at start, and every `retryMs` until it succeeds (ClickHouse
 *   may be down as the service starts: the service starts anyway).
 * - With Valkey: whenever its marker is missing (valkeyWarmGuard), at start and every few seconds;
 *   ready again once the marker is there or the rebuild is done, and `recover` has succeeded.
 */
export function openWhenWarm(opts: WarmOptions): Promise<IngestWarmth> {
  return opts.redis ? warmWithValkey(opts, opts.redis) : warmInProcess(opts);
}

/** In-process state: rebuilt once, retried every `retryMs` until it succeeds. */
async function warmInProcess(opts: WarmOptions): Promise<IngestWarmth> {
  let ready = false;
  let warming = false;
  let retry: ReturnType<typeof setInterval> | undefined;
  const attempt = async () => {
    if (ready || warming) return;
    warming = true;
    try {
      await opts.warm();
      ready = true;
      opts.onReady?.();
    } catch (err) {
      opts.onError(err);
    } finally {
      warming = false;
    }
    if (ready && retry) clearInterval(retry);
  };
  await attempt();
  if (!ready) {
    retry = setInterval(() => void attempt(), opts.retryMs ?? 5_000);
    (retry as { unref?: () => void }).unref?.();
  }
  return { ready: () => ready, stop: () => clearInterval(retry) };
}

/** State in Valkey: checked (and rebuilt when its marker is missing) at start, on every reconnect and every `retryMs`. */
async function warmWithValkey(opts: WarmOptions, redis: NonNullable<WarmOptions["redis"]>): Promise<IngestWarmth> {
  let ready = false;
  let recovered = false;
  const before = async () => {
    if (recovered || !opts.recover) return;
    await opts.recover();
    recovered = true;
  };
  // Ready only when a check says so (onChecked): a rebuild a reconnect overtook is not enough.
  const rebuild = async () => {
    ready = false;
    await opts.warm();
  };
  const onChecked = () => {
    ready = true;
    opts.onReady?.();
  };
  const guard = valkeyWarmGuard(redis, rebuild, { onError: opts.onError, onChecked, onRebuilt: opts.onRebuilt, before, intervalMs: opts.retryMs });
  // Connected again: Valkey may have restarted without its data. Items wait for the marker's
  // check instead of the next interval (the durability audit: with Valkey restarted empty, items
  // in the 1-3 s before the timed check split 36 of 60 running visits in two).
  const reconnected = () => {
    ready = false;
    void guard.recheck().catch(opts.onError);
  };
  redis.on?.("ready", reconnected);
  await guard.check().catch(opts.onError);
  return {
    ready: () => ready,
    stop: () => {
      guard.stop();
      redis.off?.("ready", reconnected);
    },
  };
}
