// Deduplication-log entries whose part a kill kept from being committed, removed before the
// embedded engine opens its data directory.
//
// A MergeTree table (and each materialized view's target) records an inserted block's dedup token
// in `deduplication_logs/deduplication_log_<n>.txt` (lines `1 <TAB> part name <TAB> block id`; `2`
// for a dropped part), then moves the part's directory into place. The engine runs in our process,
// so a kill between those steps leaves an entry whose part never existed: the replay of that spool
// segment, with the same token, is then dropped as a duplicate by exactly the tables and views that
// lost their part, and they stay short of its rows (crash audits saw `sessions` short of one
// flush's 16 sessions, and `daily_session_stats` short of 9, while the other tables held them).
//
// Such an entry is recognisable before the engine opens: block numbers are allocated per table in
// increasing order, and the lost part's number is above every part on disk (nothing was inserted
// into that table after it: flushes are sequential and the process died). Removing the entry makes
// the replay insert exactly the parts that are missing; the tables and views that have theirs keep
// their entries and drop the replay as before. An entry removed this way can only matter to a
// replay of its token, and tokens are replayed only for segments the previous process left, whose
// landed parts are on disk and keep their entries. Lines or names this does not understand leave
// their file untouched.
import { existsSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const LOG_FILE = /^deduplication_log_\d+\.txt$/;
// A log rewritten here goes through a temporary file next to it; one a kill left behind would stop
// the engine from opening (it reads every file of the directory as a log), and its log still holds
// what the rewrite was to remove.
const STALE_REWRITE = /^deduplication_log_\d+\.txt\.tmp$/;
const LOG_LINE = /^([12])\t([^\t]+)\t([^\t]+)$/;

/** The highest block number of a part name `<partition>_<min>_<max>_<level>[_<mutation>]`. */
export function maxBlockOf(partName: string): number | undefined {
  const fields = partName.split("_");
  if (fields.length !== 4 && fields.length !== 5) return undefined;
  if (fields[0] === "" || fields[0]!.startsWith("tmp") || !fields.slice(1).every((f) => /^\d+$/.test(f))) return undefined;
  return Number(fields[2]);
}

export interface OrphanReport {
  /** The table's data directory (under the engine's `store`). */
  table: string;
  /** Part names whose entries were removed. */
  parts: string[];
}

/** Removes, from one table's dedup logs, the entries of parts above every part on disk. */
export function dropOrphansOfTable(tableDir: string): string[] {
  const logDir = join(tableDir, "deduplication_logs");
  if (!existsSync(logDir)) return [];
  for (const name of readdirSync(logDir)) if (STALE_REWRITE.test(name)) unlinkSync(join(logDir, name));
  let highest = -1;
  for (const name of readdirSync(tableDir)) {
    const max = maxBlockOf(name);
    if (max !== undefined && max > highest) highest = max;
  }
  const removed: string[] = [];
  for (const file of readdirSync(logDir).filter((f) => LOG_FILE.test(f))) {
    const path = join(logDir, file);
    const text = readFileSync(path, "utf8");
    const lines = text.split("\n");
    if (lines.at(-1) === "") lines.pop();
    const keep: string[] = [];
    let understood = true;
    const dropped: string[] = [];
    for (const line of lines) {
      const m = LOG_LINE.exec(line);
      const max = m ? maxBlockOf(m[2]!) : undefined;
      if (!m || max === undefined) {
        understood = false;
        break;
      }
      if (m[1] === "1" && max > highest) dropped.push(m[2]!);
      else keep.push(line);
    }
    if (!understood || dropped.length === 0) continue;
    const tmp = `${path}.tmp`;
    writeFileSync(tmp, keep.map((l) => `${l}\n`).join(""));
    renameSync(tmp, path);
    removed.push(...dropped);
  }
  return removed;
}

/** Every table of the engine's data directory (`<dataDir>/clickhouse`), before the engine opens it. */
export function dropOrphanDedupEntries(engineDir: string): OrphanReport[] {
  const store = join(engineDir, "store");
  if (!existsSync(store)) return [];
  const out: OrphanReport[] = [];
  for (const prefix of readdirSync(store)) {
    const prefixDir = join(store, prefix);
    let tables: string[];
    try {
      tables = readdirSync(prefixDir);
    } catch {
      continue; // not a directory
    }
    for (const uuid of tables) {
      const tableDir = join(prefixDir, uuid);
      let parts: string[];
      try {
        parts = dropOrphansOfTable(tableDir);
      } catch {
        continue; // not a table directory, or unreadable: the engine reports what matters
      }
      if (parts.length > 0) out.push({ table: tableDir, parts });
    }
  }
  return out;
}
