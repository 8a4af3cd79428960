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
// Such an entry is recognisable before the engine opens: no part on disk in its partition covers its
// block number (a part's name carries the range of block numbers it holds; merges keep ranges, and
// no merge ran after the kill). That holds also when the killed INSERT wrote one part per partition
// (a flush spanning a month boundary) and only some of them landed. Removing the entry makes
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

/** Partition and block range of a part name `<partition>_<min>_<max>_<level>[_<mutation>]`. */
export function partRange(partName: string): { partition: string; min: number; max: number } | undefined {
  const fields = partName.split("_");
  if (fields.length !== 4 && fields.length !== 5) return undefined;
  if (fields[0] === "" || fields[0]!.startsWith("tmp") || !fields.slice(1).every((f) => /^\d+$/.test(f))) return undefined;
  return { partition: fields[0]!, min: Number(fields[1]), max: Number(fields[2]) };
}

/** The log line of each table whose entries were removed (the service's log and `npm run clickhouse`). */
export const ORPHANS_REMOVED = "dedup entries of parts a kill kept from being committed removed: the replay writes them";

export interface OrphanReport {
  /** The table's data directory (under the engine's `store`). */
  table: string;
  /** Part names whose entries were removed. */
  parts: string[];
}

/** Removes, from one table's dedup logs, the entries of parts no part on disk covers. */
export function dropOrphansOfTable(tableDir: string): string[] {
  const logDir = join(tableDir, "deduplication_logs");
  if (!existsSync(logDir)) return [];
  for (const name of readdirSync(logDir)) if (STALE_REWRITE.test(name)) unlinkSync(join(logDir, name));
  const onDisk = new Map<string, Array<{ min: number; max: number }>>();
  for (const range of readdirSync(tableDir).map(partRange)) {
    if (!range) continue;
    const list = onDisk.get(range.partition);
    if (list) list.push(range);
    else onDisk.set(range.partition, [range]);
  }
  const covered = (e: { partition: string; min: number; max: number }) => (onDisk.get(e.partition) ?? []).some((p) => p.min <= e.min && e.max <= p.max);
  const files = readdirSync(logDir).filter((f) => LOG_FILE.test(f)).map((file) => {
    const lines = readFileSync(join(logDir, file), "utf8").split("\n");
    if (lines.at(-1) === "") lines.pop();
    return { path: join(logDir, file), lines };
  });
  // Parts the log itself records as dropped: their entries are inert, and stay as they are.
  const dropped = new Set(files.flatMap((f) => f.lines.map((l) => LOG_LINE.exec(l)).filter((m) => m?.[1] === "2").map((m) => m![2]!)));
  const removed: string[] = [];
  for (const { path, lines } of files) {
    const keep: string[] = [];
    let understood = true;
    const orphans: string[] = [];
    for (const line of lines) {
      const m = LOG_LINE.exec(line);
      const entry = m ? partRange(m[2]!) : undefined;
      if (!m || entry === undefined) {
        understood = false;
        break;
      }
      if (m[1] === "1" && !dropped.has(m[2]!) && !covered(entry)) orphans.push(m[2]!);
      else keep.push(line);
    }
    if (!understood || orphans.length === 0) continue;
    const tmp = `${path}.tmp`;
    writeFileSync(tmp, keep.map((l) => `${l}\n`).join(""));
    renameSync(tmp, path);
    removed.push(...orphans);
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
