// With Valkey, a request's session state is committed there before its rows reach the spool, and
// Valkey outlives the process. A crash between the two left states that describe rows never
// written; the next item of such a session would then write a cancel row for a state that was
// never stored (two live versions, wrong counters and bounce). So each instance journals its
// commits (state-store.ts) until their rows are written, and at start, once what its spool held is
// in ClickHouse, takes back every journaled commit whose rows ClickHouse does not hold: newest
// first, each only if no one changed those keys since (another instance building on it is the
// limit the README names).
import type { ClickHouseClient } from "@clickhouse/client-web";
import { writeFileSync } from "node:fs";
import { DataFileError, readSmallFile } from "../../private-files.ts";
import { join } from "node:path";
import { STATE_TTL_MS } from "./sessionizer.ts";
import { stateJson, type JournalEntry, type JournaledStateStore } from "./state-store.ts";

/** A session state a commit wrote: its row with sign +1 is what shows the commit's rows were written. */
export interface StateRef {
  service_id: string;
  session_id: string;
  version: number;
}

export interface RecoveryResult {
  /** Journaled commits found. */
  entries: number;
  /** Commits whose rows were not written, taken back. */
  rolledBack: number;
  /**
   * Commits whose keys changed since (a later commit built on them): left as they are. When such a
   * commit's rows were not written and another instance built on it, that session's numbers are
   * off (the README's multi-instance limit).
   */
  builtOn: number;
}

/** The session states `entry` wrote (a merged session's marker and span lists are not states). */
export function writtenStates(entry: JournalEntry): StateRef[] {
  const out: StateRef[] = [];
  for (const text of entry.after) {
    if (text === null) continue;
    const v = JSON.parse(stateJson(text)) as Partial<StateRef>;
    if (typeof v.session_id === "string" && typeof v.service_id === "string" && typeof v.version === "number") {
      out.push({ service_id: v.service_id, session_id: v.session_id, version: v.version });
    }
  }
  return out;
}

const refKey = (r: StateRef) => `${r.service_id}\u0000${r.session_id}\u0000${r.version}`;

/** Which of `refs` have their +1 row in ClickHouse (as refKey strings). */
export async function storedStates(client: ClickHouseClient, refs: readonly StateRef[]): Promise<Set<string>> {
  const found = new Set<string>();
  for (let i = 0; i < refs.length; i += 1000) {
    const part = refs.slice(i, i + 1000);
    const rows = await (await client.query({
      query: `SELECT service_id, session_id, version FROM sessions
              WHERE service_id IN {services:Array(String)} AND session_id IN {ids:Array(String)} AND sign = 1
                AND has(arrayZip({services:Array(String)}, {ids:Array(String)}, {versions:Array(UInt32)}), (service_id, session_id, version))`,
      query_params: {
        services: part.map((r) => r.service_id),
        ids: part.map((r) => r.session_id),
        versions: part.map((r) => r.version),
      },
      format: "JSONEachRow",
    })).json<StateRef>();
    for (const r of rows) found.add(refKey({ ...r, version: Number(r.version) }));
  }
  return found;
}

/**
 * Takes back the journaled commits whose rows were never written. Call it before the instance
 * takes items, after its leftover spool is in ClickHouse (`isStored` must see every written row).
 */
export async function recoverJournal(
  store: JournaledStateStore,
  isStored: (refs: readonly StateRef[]) => Promise<Set<string>>,
): Promise<RecoveryResult> {
  const entries = await store.journaled();
  const result: RecoveryResult = { entries: entries.length, rolledBack: 0, builtOn: 0 };
  // Newest first: a later commit of this instance may have built on an earlier one's state, which
  // holds its keys again once the later one is taken back. ClickHouse is asked only about commits
  // that still hold their keys: a clean shutdown leaves none, and the service starts without it.
  for (let i = entries.length - 1; i >= 0; i--) {
    const entry = entries[i]!;
    if (!(await store.holds(entry))) {
      // Built on since (by a later commit whose rows were written, or by another instance).
      result.builtOn++;
    } else {
      // A request's rows are one spool record (written whole or not at all), so one of its
      // states' rows tells for all. A commit that wrote no state is left as it is.
      const refs = writtenStates(entry);
      const written = refs.length === 0 || (await isStored(refs)).size > 0;
      if (!written && (await store.rollBack(entry, STATE_TTL_MS))) result.rolledBack++;
    }
    await store.settle(entry.id);
  }
  return result;
}

/**
 * This instance's name for its journal: a random id kept in DATA_DIR, so a restart on the same data
 * directory (the same spool) finds the entries its previous process left.
 */
export function instanceId(dataDir: string): string {
  const path = join(dataDir, "instance-id");
  try {
    writeFileSync(path, crypto.randomUUID(), { flag: "wx", mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  // Read like the root token: a FIFO or device in its place would block the start, and an empty or
  // edited id could name another instance's journal.
  const id = readSmallFile(path, 4096)?.trim() ?? "";
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) {
    throw new DataFileError(`${path} does not hold this instance's id (a UUID): delete it (a new id is made at the next start)`);
  }
  return id;
}
