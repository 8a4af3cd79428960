// The one way the service reaches ClickHouse: `@clickhouse/client-web`, pointed either at a
// server (`CLICKHOUSE_URL`) or, by default, at the embedded engine through an in-process fetch.
import { createClient, type ClickHouseClient } from "@clickhouse/client-web";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { ChdbEngine } from "./embedded/chdb-engine.ts";
import { createClickHouseHttpHandler } from "./embedded/http-handler.ts";
import { JsonEachRowBytes, lend } from "./embedded/lent-bodies.ts";
import { dropOrphanDedupEntries, type OrphanReport } from "./embedded/orphan-dedup-entries.ts";

export interface ClickHouseOptions {
  /** Server URL; when absent the embedded engine under `dataDir` is used. */
  url?: string;
  database: string;
  user?: string;
  password?: string;
  dataDir?: string;
  embeddedLanes?: number;
  /** Embedded engine: told, before it opens, what a kill left in its dedup logs and was removed. */
  onOrphanDedupEntries?: OnOrphanDedupEntries;
  requestTimeoutMs?: number;
}

/** A client plus what is needed to shut its backing down. */
export interface ClickHouse {
  client: ClickHouseClient;
  /** The embedded engine, when there is no server. */
  engine: ChdbEngine | undefined;
  close(): Promise<void>;
}

const utf8 = new TextDecoder();
// Rows already in JSONEachRow text go as they are, never parsed again: to a server as text (without
// their last "\n", which client-web adds back), to the embedded engine lent by reference.
const toServer = (value: unknown): string =>
  value instanceof JsonEachRowBytes ? utf8.decode(value.bytes.subarray(0, value.bytes.byteLength - 1)) : JSON.stringify(value);
const toEmbedded = (value: unknown): string => (value instanceof JsonEachRowBytes ? lend(value) : JSON.stringify(value));

const engines = new Map<string, ChdbEngine>();
/** Told what opening an engine directory removed from its tables' dedup logs (orphan-dedup-entries.ts). */
export type OnOrphanDedupEntries = (reports: OrphanReport[]) => void;

/** Where the embedded engine keeps its files under `dataDir`. */
export const embeddedEngineDir = (dataDir: string): string => join(dataDir, "clickhouse");

/** Opens (or reuses: one per process and directory) the embedded engine under `dataDir`. */
export function embeddedEngine(dataDir: string, lanes = 4, onOrphans?: OnOrphanDedupEntries): ChdbEngine {
  const dir = embeddedEngineDir(dataDir);
  let engine = engines.get(dir);
  if (!engine) {
    mkdirSync(dir, { recursive: true });
    // Before the engine reads its tables: entries a kill left without their part (see the file).
    const orphans = dropOrphanDedupEntries(dir);
    if (orphans.length > 0) onOrphans?.(orphans);
    engine = ChdbEngine.open(dir, lanes);
    engines.set(dir, engine);
  }
  return engine;
}

/** Builds the client. `database` is the client's default database for every statement. */
export function createClickHouse(opts: ClickHouseOptions): ClickHouse {
  const common = {
    database: opts.database,
    username: opts.user ?? "default",
    password: opts.password ?? "",
    request_timeout: opts.requestTimeoutMs ?? 60_000,
    clickhouse_settings: { date_time_output_format: "iso" as const, output_format_json_quote_64bit_integers: 0 as const },
  };
  if (opts.url) {
    const client = createClient({ ...common, json: { parse: JSON.parse, stringify: toServer }, url: opts.url });
    return { client, engine: undefined, close: () => client.close() };
  }
  if (!opts.dataDir) throw new Error("createClickHouse: either url or dataDir is required");
  const engine = embeddedEngine(opts.dataDir, opts.embeddedLanes, opts.onOrphanDedupEntries);
  const client = createClient({
    ...common,
    // Whole answers (the service reads every result whole anyway), so each read runs on chdb's
    // worker threads instead of being planned on the event loop (embedded/http-handler.ts). A
    // query that wants its rows in pieces passes wait_end_of_query: 0.
    clickhouse_settings: { ...common.clickhouse_settings, wait_end_of_query: 1 as const },
    json: { parse: JSON.parse, stringify: toEmbedded },
    url: "http://embedded.clickhouse",
    fetch: createClickHouseHttpHandler(engine) as typeof fetch,
  });
  // The engine is per process and may be shared (tests), so closing the client leaves it open.
  return { client, engine, close: () => client.close() };
}

/** Closes every embedded engine this process opened (last step of shutdown). */
export async function closeEmbeddedEngines(): Promise<void> {
  const all = [...engines.values()];
  engines.clear();
  await Promise.all(all.map((e) => e.close()));
}
