// A bounded load generator for the durability tests (loopback only): a few concurrent workers POST
// single events, single page views and small batches with explicit event ids through a secret key
// (so ip, user agent and timestamp are set by the test), and record what the service answered.
// It stops by itself after `maxRequests` or `maxDurationMs`, whichever comes first.
//
// What counts as acknowledged: an id in a 202's `event_ids` (accepted), or an item of a 202 dropped
// as `duplicate` (the service says it already has it, so a client would not send it again). Both
// must end up in ClickHouse exactly once. Ids of requests that failed (connection refused or reset,
// 503, timeout) are not required; they may be resent later with the same ids (`retryShare`),
// which is what a real client does and what makes idempotency across restarts observable.
import { expect } from "bun:test";
import type { ClickHouseClient } from "@clickhouse/client-web";

export const BROWSER_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

export interface LoadOptions {
  /** Base URL of the service for the next request (several instances: alternate). */
  target: () => string;
  key: string;
  workers: number;
  maxRequests: number;
  maxDurationMs: number;
  /** Share (0..1) of failed requests resent later with the same event ids. */
  retryShare?: number;
  /** Distinct visitors (ip + user agent); default 40. */
  visitors?: number;
  /** Per-request timeout; default 5 s. */
  requestTimeoutMs?: number;
  /** Largest batch; default 8 items. */
  maxBatch?: number;
  /** Padding added to each custom event's properties, to make events bigger (bytes). */
  padBytes?: number;
}

interface Payload {
  path: string;
  body: string;
  /** Event id of each item, in body order. */
  ids: string[];
}

export class Load {
  /** Ids in a 202's `event_ids`. */
  readonly accepted = new Set<string>();
  /** Ids the service answered `duplicate` for in a 202. */
  readonly duplicates = new Set<string>();
  /** Every id ever sent. */
  readonly sent = new Set<string>();
  /** Ids of requests that failed (and were not acknowledged later). */
  readonly failed = new Set<string>();
  /** Status (or error kind) → count. */
  readonly outcomes = new Map<string, number>();
  /** Drops other than `duplicate` (should stay empty). */
  readonly otherDrops: string[] = [];
  /** Per id: what happened to each request that carried it (`<ms since start> <outcome>`). */
  readonly history = new Map<string, string[]>();
  /** Notes for the history (e.g. kills), with their time. */
  readonly marks: string[] = [];
  requests = 0;
  acceptedBytes = 0;
  retriesSent = 0;
  readonly done: Promise<void>;
  #stopped = false;
  #retryQueue: Payload[] = [];
  #started = Date.now();
  #visitorCount: number;

  constructor(private readonly opts: LoadOptions) {
    this.#visitorCount = opts.visitors ?? 40;
    this.done = Promise.all(Array.from({ length: opts.workers }, () => this.#worker())).then(() => undefined);
  }

  /** Acknowledged ids: accepted or answered duplicate. */
  acknowledged(): Set<string> {
    return new Set([...this.accepted, ...this.duplicates]);
  }

  /** Records an event (a kill, a restart) on the load's clock, for failure messages. */
  mark(note: string): void {
    this.marks.push(`${Date.now() - this.#started} ${note}`);
  }

  /** The history of `ids` and the marks, for a failure message. */
  explain(ids: readonly string[]): string {
    return [...ids.map((id) => `${id}: ${(this.history.get(id) ?? []).join("; ")}`), `marks: ${this.marks.join("; ")}`].join("\n");
  }

  /** Asks the workers to stop after their current request; resolves when they have. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.done;
  }

  /** Sends every queued retry once (one at a time), e.g. after the last restart. */
  async flushRetries(): Promise<number> {
    const due = this.#retryQueue.splice(0);
    for (const p of due) await this.#send(p, true);
    return due.length;
  }

  summary(): string {
    return `requests ${this.requests}, accepted ${this.accepted.size}, duplicate-acks ${this.duplicates.size}, failed ids ${this.failed.size}, retries ${this.retriesSent}, outcomes ${JSON.stringify(Object.fromEntries(this.outcomes))}`;
  }

  #count(outcome: string): void {
    this.outcomes.set(outcome, (this.outcomes.get(outcome) ?? 0) + 1);
  }

  #over(): boolean {
    return this.#stopped || this.requests >= this.opts.maxRequests || Date.now() - this.#started >= this.opts.maxDurationMs;
  }

  async #worker(): Promise<void> {
    while (!this.#over()) {
      const retry = this.#retryQueue.length > 0 && Math.random() < 0.3 ? this.#retryQueue.shift() : undefined;
      const ok = await this.#send(retry ?? this.#payload(), retry !== undefined);
      if (!ok) await Bun.sleep(20 + Math.random() * 30); // the service is down or full: do not spin
    }
  }

  async #send(p: Payload, isRetry: boolean): Promise<boolean> {
    this.requests++;
    if (isRetry) this.retriesSent++;
    for (const id of p.ids) this.sent.add(id);
    const sentAt = Date.now() - this.#started;
    const note = (outcome: string) => {
      const line = `${sentAt}-${Date.now() - this.#started} ${isRetry ? "retry " : ""}${outcome}`;
      for (const id of p.ids) {
        const h = this.history.get(id);
        if (h) h.push(line);
        else this.history.set(id, [line]);
      }
    };
    let res: Response;
    let text: string;
    try {
      res = await fetch(this.opts.target() + p.path, {
        method: "POST",
        headers: { Authorization: `Bearer ${this.opts.key}`, "Content-Type": "application/json" },
        body: p.body,
        signal: AbortSignal.timeout(this.opts.requestTimeoutMs ?? 5_000),
      });
      text = await res.text();
    } catch (err) {
      const name = (err as Error).name === "TimeoutError" ? "timeout" : "connection";
      this.#count(name);
      note(name);
      this.#failed(p);
      return false;
    }
    this.#count(String(res.status));
    if (res.status !== 202) {
      note(String(res.status));
      this.#failed(p);
      return false;
    }
    note(`202 ${text.length > 300 ? `${text.slice(0, 300)}…` : text}`);
    const answer = JSON.parse(text) as { event_ids: string[]; dropped: { index: number; reason: string; message: string }[] };
    for (const id of answer.event_ids) {
      this.accepted.add(id);
      this.failed.delete(id);
    }
    for (const d of answer.dropped) {
      const id = p.ids[d.index]!;
      if (d.reason === "duplicate") {
        this.duplicates.add(id);
        this.failed.delete(id);
      } else this.otherDrops.push(`${id}: ${d.reason} ${d.message}`);
    }
    this.acceptedBytes += p.body.length;
    return true;
  }

  #failed(p: Payload): void {
    for (const id of p.ids) if (!this.accepted.has(id) && !this.duplicates.has(id)) this.failed.add(id);
    if (Math.random() < (this.opts.retryShare ?? 0)) this.#retryQueue.push(p);
  }

  #item(kind: "event" | "pageview", withType: boolean): { id: string; item: Record<string, unknown> } {
    const id = crypto.randomUUID();
    const v = Math.floor(Math.random() * this.#visitorCount);
    const page = Math.floor(Math.random() * 20);
    const item: Record<string, unknown> = {
      ...(withType ? { type: kind } : {}),
      event_id: id,
      timestamp: new Date(Date.now() - Math.floor(Math.random() * 60_000)).toISOString(),
      ip: `198.51.100.${v + 1}`,
      user_agent: BROWSER_UA,
      url: `https://shop.example/p/${page}`,
    };
    if (kind === "event") {
      item.name = `click_${page % 5}`;
      item.properties = { n: page, ...this.#padding() };
    } else item.title = `Page ${page}`;
    return { id, item };
  }

  /** `padBytes` of properties (values are at most 512 characters, so several keys). */
  #padding(): Record<string, string> {
    const out: Record<string, string> = {};
    for (let left = this.opts.padBytes ?? 0, i = 0; left > 0; left -= 500, i++) out[`pad${i}`] = "x".repeat(Math.min(500, left));
    return out;
  }

  #payload(): Payload {
    const r = Math.random();
    if (r < 0.35) {
      const { id, item } = this.#item("event", false);
      return { path: "/v1/ingest/event", body: JSON.stringify(item), ids: [id] };
    }
    if (r < 0.5) {
      const { id, item } = this.#item("pageview", false);
      return { path: "/v1/ingest/pageview", body: JSON.stringify(item), ids: [id] };
    }
    const n = 2 + Math.floor(Math.random() * ((this.opts.maxBatch ?? 8) - 1));
    const items = Array.from({ length: n }, () => this.#item(Math.random() < 0.5 ? "event" : "pageview", true));
    return { path: "/v1/ingest/batch", body: JSON.stringify({ items: items.map((i) => i.item) }), ids: items.map((i) => i.id) };
  }
}

/** event_id → number of rows, over the item tables the load writes to. */
export async function storedIdCounts(client: ClickHouseClient, serviceId: string): Promise<Map<string, number>> {
  const rows = await (await client.query({
    query: `SELECT toString(event_id) AS id, count() AS c FROM (
              SELECT event_id FROM events WHERE service_id = {svc:String}
              UNION ALL SELECT event_id FROM page_views WHERE service_id = {svc:String}
            ) GROUP BY event_id`,
    query_params: { svc: serviceId },
    format: "JSONCompactEachRow",
  })).json<[string, number]>();
  return new Map(rows.map(([id, c]) => [id, Number(c)]));
}

/** Total rows in the item tables the load writes to. */
export async function storedRows(client: ClickHouseClient, serviceId: string): Promise<number> {
  const rows = await (await client.query({
    query: `SELECT (SELECT count() FROM events WHERE service_id = {svc:String})
                 + (SELECT count() FROM page_views WHERE service_id = {svc:String}) AS n`,
    query_params: { svc: serviceId },
    format: "JSONEachRow",
  })).json<{ n: number | string }>();
  return Number(rows[0]!.n);
}

/** Waits until the stored row count reaches `atLeast` and then stops changing for `quietMs`. */
export async function waitForRows(client: ClickHouseClient, serviceId: string, atLeast: number, opts: { timeoutMs: number; quietMs?: number }): Promise<number> {
  const deadline = Date.now() + opts.timeoutMs;
  let last = -1;
  let since = Date.now();
  for (;;) {
    const n = await storedRows(client, serviceId).catch(() => -1);
    if (n !== last) {
      last = n;
      since = Date.now();
    }
    if (n >= atLeast && Date.now() - since >= (opts.quietMs ?? 1_000)) return n;
    if (Date.now() > deadline) return n;
    await Bun.sleep(200);
  }
}

/** What the check found: missing acknowledged ids, ids stored more than once, and the totals. */
export interface Reconciliation {
  acknowledged: number;
  stored: number;
  missing: string[];
  duplicated: [string, number][];
  /** Stored ids whose request failed (the crash came after the spool append): allowed. */
  storedButFailed: number;
  /** The rows of the first duplicated ids (received_at, session_id), for the failure message. */
  duplicatedRows: string[];
}

/** Compares what the load was told with what ClickHouse holds. */
export async function reconcile(client: ClickHouseClient, serviceId: string, load: Load): Promise<Reconciliation> {
  const counts = await storedIdCounts(client, serviceId);
  const acked = load.acknowledged();
  const missing = [...acked].filter((id) => !counts.has(id));
  const duplicated = [...counts].filter(([, c]) => c > 1);
  let storedButFailed = 0;
  for (const id of load.failed) if (counts.has(id)) storedButFailed++;
  let duplicatedRows: string[] = [];
  if (duplicated.length > 0) {
    duplicatedRows = (await (await client.query({
      query: `SELECT * FROM (
                SELECT toString(event_id) AS id, received_at, session_id, _part AS part FROM events WHERE event_id IN {ids:Array(UUID)}
                UNION ALL
                SELECT toString(event_id) AS id, received_at, session_id, _part AS part FROM page_views WHERE event_id IN {ids:Array(UUID)}
              ) ORDER BY id, received_at`,
      query_params: { ids: duplicated.slice(0, 5).map(([id]) => id) },
      format: "JSONEachRow",
    })).json<Record<string, string>>()).map((row) => JSON.stringify(row));
  }
  return { acknowledged: acked.size, stored: counts.size, missing, duplicated, storedButFailed, duplicatedRows };
}

/** Asserts 0 missing and 0 duplicated, with the figures in the failure message. */
export function expectExactlyOnce(r: Reconciliation, context: () => string, load?: Load): void {
  const detail = () =>
    `acknowledged ${r.acknowledged}, stored ${r.stored}, missing ${r.missing.length} (${r.missing.slice(0, 5).join(", ")}), ` +
    `duplicated ${r.duplicated.length} (${r.duplicated.slice(0, 5).map(([id, c]) => `${id}×${c}`).join(", ")})\n` +
    (r.duplicatedRows.length > 0 ? `rows of duplicated ids:\n${r.duplicatedRows.join("\n")}\n` : "") +
    (load ? `history:\n${load.explain([...r.missing.slice(0, 5), ...r.duplicated.slice(0, 5).map(([id]) => id)])}\n` : "") +
    context();
  if (r.missing.length > 0 || r.duplicated.length > 0) throw new Error(detail());
  expect(r.missing.length).toBe(0);
  expect(r.duplicated.length).toBe(0);
}

/**
 * Sessions whose rows do not collapse to one state: per (session, version) the signs must sum to 0
 * (a state and its cancel row) except for at most one version summing to +1, the current state (none
 * for a session merged into another). A cancel row for a state never stored leaves a version at -1
 * and two at +1: the sign sum alone (here -1 + 1 + 1 = 1) would not show it.
 */
export async function badSessionSigns(client: ClickHouseClient, serviceId: string): Promise<{ sessions: number; bad: { session_id: string; s: number; versions: [number, number][] }[] }> {
  const bad = await (await client.query({
    query: `SELECT session_id, sum(n) AS s, groupArray((version, n)) AS versions FROM (
              SELECT session_id, version, toInt64(sum(sign)) AS n FROM sessions WHERE service_id = {svc:String}
              GROUP BY session_id, version HAVING n != 0)
            GROUP BY session_id HAVING count() > 1 OR min(n) != 1 OR max(n) != 1 LIMIT 20`,
    query_params: { svc: serviceId },
    format: "JSONEachRow",
  })).json<{ session_id: string; s: number; versions: [number, number][] }>();
  const total = await (await client.query({
    query: "SELECT uniqExact(session_id) AS n FROM sessions WHERE service_id = {svc:String}",
    query_params: { svc: serviceId },
    format: "JSONEachRow",
  })).json<{ n: number | string }>();
  return { sessions: Number(total[0]!.n), bad };
}
