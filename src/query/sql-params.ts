// Query parameters for client-web's `{name:Type}` binding. Every value that comes from a request
// goes through `bind`, so no request text is ever spliced into SQL.
import type { ClickHouseClient } from "@clickhouse/client-web";

/** Collects named parameters while a statement is assembled. */
export class SqlParams {
  readonly values: Record<string, unknown> = {};
  private next = 0;

  /** Binds `value` and returns its placeholder, e.g. `{p3:String}`. */
  bind(type: "String" | "Int64" | "UInt32" | "UInt64" | "Array(String)" | "Array(Int64)", value: unknown): string {
    const name = `p${this.next++}`;
    this.values[name] = value;
    return `{${name}:${type}}`;
  }

  /** A DateTime64(3, 'UTC') constant for epoch ms, comparable with the raw tables' times. */
  instant(ms: number): string {
    return `fromUnixTimestamp64Milli(${this.bind("Int64", ms)}, 'UTC')`;
  }

  /** A DateTime('UTC') constant for an epoch-ms instant on a whole second (view hour columns). */
  second(ms: number): string {
    return `toDateTime(${this.bind("Int64", Math.floor(ms / 1000))}, 'UTC')`;
  }
}

/**
 * What raw reads count visitors by: `uniqExact` over the 64-bit cityHash64 of the id. ClickHouse's
 * uniqExact over a String already keeps a 128-bit hash per value; 64-bit keys halve the set and
 * hash faster (30 days, 1.7M sessions, 639k visitors: 290-570 ms → 210-250 ms). Two distinct ids
 * count once only when their hashes collide: for n distinct visitors the chance of any collision
 * is about n²/2^65 (10^-8 for a million). The views' visitors64 states are over the same key
 * (schemas/04-visitor_hash_views.sql). README, "Exact counts and hashes".
 *
 * `visitor_hash` is the column `MATERIALIZED cityHash64(visitor_id)` of sessions, page_views and
 * events (schemas/05-hash_columns.sql): read instead of hashing the id on every read.
 */
export const VISITOR_KEY = "visitor_hash";

// Settings of every read of the query routes:
// - `IN (subquery)` sets (sessions matching a filter: up to millions of ids) are otherwise also
//   prepared for primary-key analysis, which tripled the time of an item list filtered by device
//   over 30 days (1.5 s → 0.54 s without); small sets still use the index;
// - the threads that run a report's query get the lowest CPU priority (nice 19, reset when the
//   query ends; ClickHouse applies it only with CAP_SYS_NICE, else it is a no-op): ingest, the
//   flush and merges keep the cores when dashboards and traffic compete. With 30-day reports read
//   back to back beside 1,000 single events a second, every one of 22,000 requests was answered
//   within the load instead of 11,953-20,125, uncorrected 202 p50 13 ms against 18-30; alone, a
//   report runs as fast as before (bench/RESULTS.md, session 16 probes).
const READ_SETTINGS = "SETTINGS use_index_for_in_with_subqueries_max_values = 10000, os_thread_priority = 19";

/** How a read runs, as opposed to what it asks (the answer never depends on it). */
export interface ExecOptions {
  /**
   * `max_threads` of each query; unset = the engine's default (one per core). The composite
   * reports run their questions side by side and set 1: on 2 cores, 4 lanes of one thread each
   * keep both cores busy, while 2 threads per query spend CPU on merging per-thread states
   * (exact visitor sets, 30 days: ~1.4x the CPU of one thread) with no core left to gain.
   */
  threads?: number;
}

// With one thread a GROUP BY gains little from two-level hash tables (they exist to merge
// per-thread tables in parallel), yet ClickHouse converts to them once the states hold 50 MB,
// and exact visitor sets pay for that conversion: a 30-day hourly series has 720 keys whose sets
// pass 50 MB. One-thread reads (the reports) keep the conversion by key count only (100,000 keys,
// the default; a filter's set of matching sessions groups 684k keys and is faster two-level).
// Bench data, one thread, medians of 5: 30-day hourly series 281 → 131 ms, top pages 528 → 316,
// top pages filtered by device 536 → 501 (bench/RESULTS.md, 2026-11-29 11:45).
const ONE_THREAD = "max_threads = 1, group_by_two_level_threshold_bytes = 0";

/** Runs a SELECT and returns its rows as objects (JSONEachRow). */
export async function selectRows<T>(ch: ClickHouseClient, query: string, params: SqlParams, exec: ExecOptions = {}): Promise<T[]> {
  const result = await ch.query({ query: `${query}\n${readSettings(exec)}`, query_params: params.values, format: "JSONEachRow" });
  return result.json<T>();
}

/** The SETTINGS clause every read of the query routes ends with. */
export function readSettings(exec: ExecOptions): string {
  // `threads` is a number from code (never request input); checked so it cannot carry text.
  const valid = exec.threads !== undefined && Number.isInteger(exec.threads) && exec.threads > 0;
  const threads = !valid ? "" : exec.threads === 1 ? `, ${ONE_THREAD}` : `, max_threads = ${exec.threads}`;
  return `${READ_SETTINGS}${threads}`;
}
