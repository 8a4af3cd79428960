// One ingest request, start to finish: enrich every item, drop duplicates, place items in
// sessions, and hand the rows to the writer (the durable spool, or ClickHouse directly). The
// answer lists what was accepted and what was dropped, by index and reason.
import { ApiError } from "../errors.ts";
import type { Issue } from "../errors.ts";
import type { Metrics } from "../ops/metrics.ts";
import { ClaimPendingError, DEDUP_WINDOW_MS, type EventDedup } from "./dedup.ts";
import { Drop, enrichItem, type EnrichedItem, type PipelineDeps, type RequestContext } from "./pipeline.ts";
import { itemRecord, mergeRecords, sessionRecords } from "./rows.ts";
import { ITEM_TYPES, type ItemType } from "./schemas.ts";
import type { Assignment, Placement, Sessionizer } from "./sessions/sessionizer.ts";
import type { StoredEventIds } from "./stored-ids.ts";

/** Where accepted rows go. `write` resolving is what a 202 promises. */
export interface RowWriter {
  /** Throws ApiError('unavailable') when the writer cannot take `bytes` more right now. */
  assertRoom(bytes: number): void;
  /** Writes one request's row lines (rows.ts) together: all of them, or none. */
  write(lines: string[]): Promise<void>;
}

export interface IngestorDeps extends PipelineDeps {
  sessionizer: Sessionizer;
  dedup: EventDedup;
  /** Ids already in ClickHouse, for items older than the dedup window (see stored-ids.ts). */
  storedEventIds?: StoredEventIds;
  writer: RowWriter;
  metrics: Metrics;
}

export interface DroppedItem {
  index: number;
  reason: string;
  message: string;
  /** Every field at fault, for invalid items. */
  issues?: Issue[];
}

export interface IngestResult {
  accepted: number;
  dropped: DroppedItem[];
  /** The event id of each accepted item, in input order. */
  event_ids: string[];
  /** Session id of each accepted item, in input order. */
  session_ids: string[];
}

/**
 * Rough bytes per item in the spool, to refuse before any state changes when it is full (and for
 * readiness to say so). An item is its row plus a session's cancel and new states: 2,012 bytes for
 * the benchmark's ~330-byte events; 1 KiB under-counted, so /readyz said ready while ingest refused.
 */
export const BYTES_PER_ITEM = 4096;

/**
 * Ingests `raws` for the key's service. `type` is set by the single-item routes. Items of a request
 * refused with 503 (spool full, a backend not answering) are counted as outcome `unavailable`.
 */
export function ingestItems(deps: IngestorDeps, ctx: RequestContext, raws: readonly unknown[], type?: ItemType): Promise<IngestResult> {
  return ingest(deps, ctx, raws, type).catch((err: unknown) => {
    if (err instanceof ApiError && err.code === "unavailable") countRefused(deps.metrics, raws, type);
    throw err;
  });
}

/**
 * How long a request waits, between tries, for another request's pending claim on one of its ids
 * (Valkey: claimed, rows not yet durable) to become a stored id or to be given back: about 1.2 s in
 * all. The other request usually writes within milliseconds, so a client's retry that races its
 * own original, or a beacon sent twice, is answered `duplicate` (or stored, when the original
 * failed) instead of 503. A claim still pending after that belongs to a request stuck or cut off
 * with its process (dedup.ts, PENDING_CLAIM_MS): 503 with Retry-After, as before.
 */
export const CLAIM_RETRY_DELAYS_MS: readonly number[] = [10, 25, 50, 100, 200, 400, 400];

/** dedup.claim, waiting (bounded) for claims of other requests still in flight; see CLAIM_RETRY_DELAYS_MS. */
async function claimAfterOthers(dedup: EventDedup, keys: readonly string[], times: readonly number[]): Promise<boolean[]> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await dedup.claim(keys, times);
    } catch (err) {
      if (!(err instanceof ClaimPendingError)) throw err;
      const delay = CLAIM_RETRY_DELAYS_MS[attempt];
      if (delay === undefined) {
        throw new ApiError("unavailable", "Some event_id of this request is being stored by another request; retry later", { retryAfterSeconds: 5 });
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

/** Counts every item of a request refused with 503 (see ingestItems). */
export function countRefused(metrics: Metrics, raws: readonly unknown[], type?: ItemType): void {
  for (const raw of raws) metrics.countItems(typeOf(raw, type), "unavailable");
}

async function ingest(deps: IngestorDeps, ctx: RequestContext, raws: readonly unknown[], type?: ItemType): Promise<IngestResult> {
  const dropped: DroppedItem[] = [];
  const drop = (index: number, itemType: string, d: Drop) => {
    dropped.push({ index, reason: d.reason, message: d.message, ...(d.issues ? { issues: d.issues } : {}) });
    deps.metrics.countItems(itemType, d.reason);
  };

  const enriched: EnrichedItem[] = [];
  // Mostly synchronous (remembered visitor ids): wait only when some item had to compute one.
  const pending = raws.map((raw, i) => enrichItem(raw, i, type, ctx, deps));
  const results = pending.some((r) => r instanceof Promise) ? await Promise.all(pending) : (pending as Array<EnrichedItem | Drop>);
  results.forEach((r, i) => {
    if (r instanceof Drop) drop(i, typeOf(raws[i], type), r);
    else enriched.push(r);
  });
  // Refused for room only now: bad input gets its 4xx even while the buffer is full, and nothing
  // has changed yet (enrichment only fills caches; dedup claims and sessions come next).
  if (enriched.length > 0) deps.writer.assertRoom(enriched.length * BYTES_PER_ITEM);

  const keys = enriched.map((e) => `${e.serviceId}:${e.eventId}`);
  const fresh = await claimAfterOthers(deps.dedup, keys, enriched.map((e) => e.time));
  await markStoredBeyondWindow(deps, ctx, enriched, keys, fresh);
  const kept: EnrichedItem[] = [];
  const claimed: string[] = [];
  enriched.forEach((e, i) => {
    if (fresh[i]) {
      kept.push(e);
      claimed.push(keys[i]!);
    } else {
      drop(e.index, e.type, new Drop("duplicate", `event_id ${e.eventId} was already received`));
    }
  });

  let committed: Assignment | undefined;
  try {
    const placements: Placement[] = kept.map((e) => ({
      serviceId: e.serviceId,
      visitorId: e.visitorId,
      sessionId: e.clientSessionId,
      touch: {
        time: e.time,
        kind: e.type,
        path: e.path,
        conversion: e.item.type === "event" && e.item.conversion === true,
        userId: e.userId,
        attrs: {
          hostname: e.hostname, referrer: e.referrer, referrer_domain: e.referrerDomain,
          utm_source: e.utm.source, utm_medium: e.utm.medium, utm_campaign: e.utm.campaign,
          utm_term: e.utm.term, utm_content: e.utm.content,
          device: e.device, browser: e.browser, os: e.os, country: e.country,
          screen_width: e.item.type === "session" ? e.item.screen?.width ?? 0 : 0,
          screen_height: e.item.type === "session" ? e.item.screen?.height ?? 0 : 0,
          language: e.item.type === "session" ? e.item.language ?? "" : "",
          timezone: e.item.type === "session" ? e.item.timezone ?? "" : "",
        },
      },
    }));
    const assignment = placements.length > 0 ? await deps.sessionizer.assign(placements) : undefined;
    if (assignment) committed = assignment;
    const records: string[] = [];
    kept.forEach((e, i) => {
      const record = itemRecord(e, assignment!.sessionIds[i]!);
      if (record) records.push(record);
    });
    if (assignment) {
      for (const change of assignment.changes) records.push(...sessionRecords(change));
      if (assignment.cancelled.length > 0 || assignment.aliases.length > 0) records.push(...mergeRecords(assignment));
    }
    if (records.length > 0) await deps.writer.write(records);
    committed = undefined; // the rows are written: the state describes them
    if (assignment) void deps.sessionizer.settle(assignment).catch(() => undefined); // a restart finds the rows if this fails
    // The rows are durable: from now on a retry is a duplicate. If this fails, the pending claims
    // expire and a later retry is stored again: a rare duplicate rather than a lost event.
    await deps.dedup.confirm(claimed).catch(() => undefined);
    for (const e of kept) deps.metrics.countItems(e.type, "accepted");
    dropped.sort((a, b) => a.index - b.index);
    return { accepted: kept.length, dropped, event_ids: kept.map((e) => e.eventId), session_ids: assignment?.sessionIds ?? [] };
  } catch (err) {
    // Rows not written: the session state goes back to what the stored rows say (see undo; it
    // settles the journal entry too, and with no answer keeps trying, so it must not be settled here).
    if (committed) await deps.sessionizer.undo(committed).catch(() => false);
    await deps.dedup.release(claimed).catch(() => undefined);
    throw err;
  }
}

/**
 * Marks as seen (fresh[i] = false) the claimed items whose client event_id ClickHouse already
 * holds although the window has forgotten it: items older than the window (stored-ids.ts). Their
 * claims stay, confirmed: the rows are stored. If ClickHouse cannot answer, nothing is claimed and
 * the request is refused with 503, as storing a possible duplicate is not an option.
 */
async function markStoredBeyondWindow(deps: IngestorDeps, ctx: RequestContext, enriched: EnrichedItem[], keys: string[], fresh: boolean[]): Promise<void> {
  if (!deps.storedEventIds) return;
  const oldest = ctx.receivedAt - DEDUP_WINDOW_MS;
  const candidates = enriched.filter((e, i) => fresh[i] && e.item.event_id !== undefined && e.time < oldest);
  if (candidates.length === 0) return;
  let stored: Set<string>;
  try {
    stored = await deps.storedEventIds(ctx.serviceId, candidates.map((e) => ({ eventId: e.eventId, time: e.time })));
  } catch {
    await deps.dedup.release(keys.filter((_, i) => fresh[i])).catch(() => undefined);
    throw new ApiError("unavailable", "Could not check whether back-filled event ids are already stored; retry later", { retryAfterSeconds: 5 });
  }
  const known: string[] = [];
  enriched.forEach((e, i) => {
    if (fresh[i] && stored.has(e.eventId) && e.time < oldest) {
      fresh[i] = false;
      known.push(keys[i]!);
    }
  });
  await deps.dedup.confirm(known).catch(() => undefined);
}

function typeOf(raw: unknown, type: ItemType | undefined): string {
  if (type) return type;
  const t = (raw as { type?: unknown } | null)?.type;
  return typeof t === "string" && (ITEM_TYPES as readonly string[]).includes(t) ? t : "unknown";
}
