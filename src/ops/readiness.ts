// What /readyz checks, in one place: ClickHouse answers, the schema is current, the spool has room
// and can write, the ingest state is rebuilt, and a configured Valkey answers. Each probe is bounded
// (READY_TIMEOUT_MS), so a hung backend is a reason, never a hung probe.
import type { ClickHouseClient } from "@clickhouse/client-web";
import type Redis from "ioredis";
import { BYTES_PER_ITEM, type RowWriter } from "../ingest/ingestor.ts";
import type { Spool } from "../spool/spool.ts";
import { pendingMigrations } from "../storage/migrate.ts";
import { withTimeout } from "../with-timeout.ts";
import { type Readiness, SHUTTING_DOWN } from "./ops-routes.ts";

const READY_TIMEOUT_MS = 2_000;

export interface ReadinessDeps {
  clickhouse: ClickHouseClient;
  /** A client of the `default` database, which reads `schema_migrations` (storage/migrate.ts). */
  admin: ClickHouseClient;
  database: string;
  writer: Pick<RowWriter, "assertRoom">;
  spool: Pick<Spool, "writeFailure">;
  /** Whether the ingest state is rebuilt (ingest/warm-up.ts), and why the last attempt failed ("" if it did not). */
  ingestReady: () => boolean;
  ingestError: () => string;
  redis: Redis | undefined;
  /** The process is stopping: the only reason is then SHUTTING_DOWN. */
  stopping: () => boolean;
}

export function createReadiness(d: ReadinessDeps): Readiness {
  // The schema files ship with the code, so once every one is applied the schema stays current
  // for this process's life: later probes skip reading the files and schema_migrations.
  let schemaCurrent = false;
  return async () => {
    if (d.stopping()) return [SHUTTING_DOWN];
    const reasons: string[] = [];
    const ping = await withTimeout(d.clickhouse.ping(), READY_TIMEOUT_MS);
    if (ping === undefined) reasons.push(`clickhouse: no answer within ${READY_TIMEOUT_MS} ms`);
    else if (!ping.success) reasons.push(`clickhouse: ${ping.error.message}`);
    else if (!schemaCurrent) {
      const pending = await withTimeout(pendingMigrations(d.admin, { database: d.database }).catch((e) => [`? (${e})`]), READY_TIMEOUT_MS);
      if (pending === undefined) reasons.push(`clickhouse: no answer within ${READY_TIMEOUT_MS} ms`);
      else if (pending.length > 0) reasons.push(`schema: pending migrations ${pending.join(", ")}`);
      else schemaCurrent = true;
    }
    // The same check ingest makes (room for one more item), so ready means ingest is taking items.
    try {
      d.writer.assertRoom(BYTES_PER_ITEM);
    } catch {
      reasons.push("spool: at its cap while ClickHouse catches up");
    }
    const writeFailure = d.spool.writeFailure();
    if (writeFailure !== null) reasons.push(`spool: cannot write to its disk (${writeFailure})`);
    if (!d.ingestReady()) {
      const last = d.ingestError();
      reasons.push(`ingest: session and event-id state not rebuilt from ClickHouse yet${last ? ` (last attempt: ${last})` : ""}`);
    }
    // With Valkey, ingest needs it (event-id claims, session state): down means refusing items.
    // So does a Valkey that keeps the connection but does not answer (paused, swapping, stuck):
    // ingest's commands time out after 1 s, and a PING would too (an audit saw /readyz 200 while
    // every ingest request got 503 for 12 s of a SIGSTOPped Valkey).
    if (d.redis && d.redis.status !== "ready") reasons.push(`valkey: ${d.redis.status}`);
    else if (d.redis) {
      const pong = await withTimeout(d.redis.ping().then(() => "", (e: Error) => e.message), READY_TIMEOUT_MS);
      if (pong === undefined) reasons.push(`valkey: no answer within ${READY_TIMEOUT_MS} ms`);
      else if (pong !== "") reasons.push(`valkey: ${pong}`);
    }
    return reasons;
  };
}
