// The `api_keys` row format and the one query shape that reads it. A revocation is a newer row for
// the same id (ReplacingMergeTree(updated_at)); until ClickHouse merges the versions, readers pick
// the latest row per id themselves, so correctness never waits for a merge.
import type { KeyType } from "./key-format.ts";
import type { KeyRecord } from "./key-store.ts";

/** One `api_keys` row as JSONEachRow reads it (DateTime64 as ISO text, see storage/clickhouse.ts). */
export interface KeyRow {
  id: string;
  type: KeyType;
  key_hash: string;
  key_prefix: string;
  name: string;
  service_id: string;
  services: string[];
  origins: string[];
  created_at: string;
  revoked_at: string | null;
  updated_at: string;
}

/**
 * The latest version of each key matching `where`. A revoked version outranks any active one
 * (revocation is final even if clocks disagree), then the newest `updated_at` wins.
 */
export function LATEST_ROWS_SQL(where: string): string {
  return `SELECT * FROM (
  SELECT id, type, key_hash, key_prefix, name, service_id, services, origins, created_at, revoked_at, updated_at
  FROM api_keys ${where}
  ORDER BY id, isNull(revoked_at), updated_at DESC
  LIMIT 1 BY id
)`;
}

/** `2024-05-01 12:00:00.123`: the DateTime64 text ClickHouse parses without extra settings. */
export function toSqlTime(date: Date): string {
  return date.toISOString().replace("T", " ").replace("Z", "");
}

/** The row storing `record` with `hash`, as of `updatedAt`. */
export function toRow(record: KeyRecord, hash: string, updatedAt: Date): KeyRow {
  return {
    id: record.id,
    type: record.type,
    key_hash: hash,
    key_prefix: record.keyPrefix,
    name: record.name,
    service_id: record.serviceId ?? "",
    services: [...record.services],
    origins: [...record.origins],
    created_at: toSqlTime(new Date(record.createdAt)),
    revoked_at: record.revokedAt === null ? null : toSqlTime(new Date(record.revokedAt)),
    updated_at: toSqlTime(updatedAt),
  };
}

/** The record a row describes (without its hash). */
export function fromRow(row: KeyRow): KeyRecord {
  return {
    id: row.id,
    type: row.type,
    name: row.name,
    serviceId: row.type === "admin" ? null : row.service_id,
    services: row.services,
    origins: row.origins,
    createdAt: isoUtc(row.created_at),
    revokedAt: row.revoked_at === null ? null : isoUtc(row.revoked_at),
    keyPrefix: row.key_prefix,
  };
}

// The client asks for ISO output, but a server configured otherwise answers `YYYY-MM-DD hh:mm:ss`.
function isoUtc(text: string): string {
  const date = new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(text) ? text : `${text.replace(" ", "T")}Z`);
  return date.toISOString();
}
