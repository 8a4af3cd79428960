// Every Prometheus metric the service exports, defined in one place (prom-client).
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** The metric handles the parts of the service update; built once by the composition root. */
export function createMetrics(opts: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  const registers = [registry];
  /** Stops what runs on its own (the event-loop delay monitor's timer): the service's last step. */
  let stop = () => {};
  // A few process metrics of our own instead of prom-client's defaults: those read V8 heap-space
  // statistics, which in Bun walk the heap and held the event loop 40–240 ms per scrape (bench).
  if (opts.defaultMetrics) {
    const started = Date.now() / 1000;
    new Gauge({ name: "process_start_time_seconds", help: "Start time of the process (Unix seconds)", registers, collect() { this.set(started); } });
    new Gauge({ name: "process_resident_memory_bytes", help: "Resident memory size in bytes", registers, collect() { this.set(process.memoryUsage.rss()); } });
    // A counter (it only grows; `_total`), set from the process's own count at each scrape.
    new Counter({
      name: "process_cpu_seconds_total", help: "User and system CPU time spent in seconds", registers,
      collect() {
        const { user, system } = process.cpuUsage();
        this.reset();
        this.inc((user + system) / 1e6);
      },
    });
    // How long the JS thread was held: every request arriving meanwhile waits it out, which is
    // what the 202's tail is made of (bench/ANALYSIS.md, "The 202 tail"). The runtime times a 10 ms timer; each
    // scrape reports the delays since the previous one and starts afresh.
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    stop = () => loop.disable();
    new Gauge({
      name: "eventloop_delay_seconds", help: "Event-loop delay since the previous scrape (p50, p99, max), timed by a 10 ms timer",
      labelNames: ["stat"] as const, registers,
      collect() {
        const seconds = (ns: number) => (loop.count > 0 && Number.isFinite(ns) ? ns / 1e9 : 0);
        // The histogram's percentiles are bucket bounds, which can lie a little above the largest
        // delay seen (an audit saw p50 0.004016 s with max 0.004015 s): never past max.
        const max = seconds(loop.max);
        this.set({ stat: "p50" }, Math.min(seconds(loop.percentile(50)), max));
        this.set({ stat: "p99" }, Math.min(seconds(loop.percentile(99)), max));
        this.set({ stat: "max" }, max);
        loop.reset();
      },
    });
  }
  /** Read just before each scrape, for values that are state rather than events (spool size). */
  const collectors: Array<() => void> = [];
  const httpRequests = new Counter({
    name: "http_requests_total", help: "HTTP requests by route and status",
    labelNames: ["method", "route", "status"] as const, registers,
  });
  const httpDuration = new Histogram({
    name: "http_request_duration_seconds", help: "HTTP request duration by route",
    labelNames: ["route"] as const, buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5], registers,
  });
  const ingestItems = new Counter({
    name: "ingest_items_total", help: "Ingested items by type and outcome (accepted, the drop reason, or unavailable: refused with 503)",
    labelNames: ["type", "outcome"] as const, registers,
  });
  // Per-request and per-item counts are tallied in plain maps and handed to prom-client when a
  // scrape collects (prom-client hashes and validates the label set on every inc, which cost ~2%
  // of the JS thread under ingest load); a scrape sees exactly the same totals.
  const requestTally = tally(httpRequests, collectors);
  const itemTally = tally(ingestItems, collectors);
  const durationOf = new Map<string, { observe(seconds: number): void }>();
  return {
    registry,
    collectors,
    httpRequests,
    httpDuration,
    ingestItems,
    /** One finished HTTP request: http_requests_total and http_request_duration_seconds. */
    countRequest(method: string, route: string, status: number, seconds: number): void {
      requestTally(`${method} ${route} ${status}`, () => ({ method, route, status: String(status) }), 1);
      let duration = durationOf.get(route);
      if (duration === undefined) durationOf.set(route, (duration = httpDuration.labels({ route })));
      duration.observe(seconds);
    },
    /** `n` ingested items of one type with one outcome (accepted, or the drop reason). */
    countItems(type: string, outcome: string, n = 1): void {
      itemTally(`${type} ${outcome}`, () => ({ type, outcome }), n);
    },
    clientErrors: new Counter({
      name: "http_client_errors_total", help: "Refused requests (4xx, and 503 unavailable) by error code", labelNames: ["code"] as const, registers,
    }),
    spoolBytes: new Gauge({ name: "spool_bytes", help: "Bytes in the durable spool", registers }),
    spoolSegments: new Gauge({ name: "spool_segments", help: "Segments in the durable spool", registers }),
    spoolCorruptTails: new Counter({ name: "spool_corrupt_tails_total", help: "Corrupt spool tails set aside", registers }),
    flushDuration: new Histogram({
      name: "flush_duration_seconds", help: "Duration of one spool segment flush to ClickHouse",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10], registers,
    }),
    flushRows: new Counter({
      name: "flush_rows_total", help: "Rows inserted into ClickHouse by table", labelNames: ["table"] as const, registers,
    }),
    insertErrors: new Counter({ name: "clickhouse_insert_errors_total", help: "Failed ClickHouse inserts", registers }),
    quarantinedRows: new Counter({
      name: "spool_quarantined_rows_total", help: "Rows ClickHouse refused as data, set aside in spool/quarantine",
      labelNames: ["table"] as const, registers,
    }),
    // In-process ingest state (without Valkey): how close it is to its caps (README, "Memory").
    stateEntries: new Gauge({ name: "ingest_state_entries", help: "In-process session state entries (sessions and visitors' recent sessions; 0 with Valkey), capped at 2 million", registers }),
    stateEvicted: new Counter({
      name: "ingest_state_evicted_total", help: "In-process session state entries pushed out by the cap before their 2 hours: a visitor coming back may start a new session", registers,
    }),
    dedupIds: new Gauge({ name: "ingest_dedup_ids", help: "Event ids the in-process dedup remembers (0 with Valkey); near 2 million it remembers less than 24 hours", registers }),
    cacheRequests: new Counter({
      name: "cache_requests_total", help: "Query cache lookups by route and result",
      labelNames: ["route", "result"] as const, registers,
    }),
    close: () => stop(),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/**
 * Counts kept in a map and added to `counter` by a collector before each scrape. `key` names the
 * label set; `labels` builds it the first time that key is seen.
 */
function tally<L extends string>(counter: Counter<L>, collectors: Array<() => void>) {
  const pending = new Map<string, { labels: Record<L, string>; n: number }>();
  collectors.push(() => {
    for (const entry of pending.values()) {
      if (entry.n === 0) continue;
      counter.inc(entry.labels, entry.n);
      entry.n = 0;
    }
  });
  return (key: string, labels: () => Record<L, string>, n: number) => {
    const entry = pending.get(key);
    if (entry) entry.n += n;
    else pending.set(key, { labels: labels(), n });
  };
}
