// Daily salts kept in a file under DATA_DIR (mode 0600), for a single instance without Valkey:
// a restart keeps the day's visitor ids, so sessions going on across the restart stay one
// session and a visitor is not counted twice that day. With Valkey (shared by instances) the file
// keeps a copy of the salts Valkey settled on, to put them back if Valkey loses them.
import { renameSync, writeFileSync } from "node:fs";
import { DataFileError, readSmallFile } from "../../private-files.ts";
import { SALT_RETENTION_DAYS, type SaltStore } from "./salt-store.ts";
import { DAY_MS, utcDay } from "../../iso-time.ts";

/** The salts file itself: the hex salt of each day, kept for the retention window. */
export interface SaltFile {
  get(day: string): string | undefined;
  /** Records the day's salt (and drops days past the retention window); writes the file if it changed. */
  put(day: string, hex: string): void;
}

/** `path` as a SaltFile (read once; written with write-then-rename). */
export function saltFile(path: string, options: { now?: () => number } = {}): SaltFile {
  const now = options.now ?? Date.now;
  const salts = new Map<string, string>(Object.entries(load(path)));
  return {
    get: (day) => salts.get(day),
    put(day, hex) {
      if (salts.get(day) === hex) return;
      salts.set(day, hex);
      const oldestKept = utcDay(now() - SALT_RETENTION_DAYS * DAY_MS);
      for (const d of salts.keys()) if (d < oldestKept) salts.delete(d);
      // Write-then-rename: a crash leaves the old file or the new one, never half of one.
      writeFileSync(`${path}.tmp`, JSON.stringify(Object.fromEntries(salts)), { mode: 0o600 });
      renameSync(`${path}.tmp`, path);
    },
  };
}

/** A salt store persisted in `path` (created on first use). */
export function createFileSaltStore(path: string, options: { now?: () => number } = {}): SaltStore {
  const file = saltFile(path, options);
  // One array per day, the same object every call: visitor-id.ts derives the HMAC key once per salt.
  const arrays = new Map<string, Uint8Array>();
  return {
    async saltFor(day) {
      if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) throw new RangeError(`salt day must be a YYYY-MM-DD date, got ${JSON.stringify(day)}`);
      let hex = file.get(day);
      if (hex === undefined) {
        hex = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("hex");
        file.put(day, hex);
      }
      let salt = arrays.get(day);
      if (salt === undefined) {
        salt = Uint8Array.from(Buffer.from(hex, "hex"));
        arrays.set(day, salt);
        for (const d of arrays.keys()) if (file.get(d) === undefined) arrays.delete(d);
      }
      return salt;
    },
  };
}

/**
 * The file's salts; none when there is no file yet (first start). A file that is there but cannot
 * be read, is not a salts file or holds an entry that is not a day's salt, stops the start
 * (DataFileError): replacing it would change the day's visitor ids, splitting every visit going
 * on across the restart.
 */
function load(path: string): Record<string, string> {
  const text = readSmallFile(path, 1024 * 1024);
  if (text === undefined) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new DataFileError(`${path} is not a salts file (a JSON object of days): restore it, or delete it (today's visitor ids then change)`);
  }
  // An entry that is not a day's salt is refused too, not dropped: dropped today, today's salt
  // would be drawn again. The key is named (a day), never the value (a secret).
  const entries = Object.entries(parsed);
  const bad = entries.find(([d, h]) => !/^\d{4}-\d{2}-\d{2}$/.test(d) || typeof h !== "string" || !/^[0-9a-f]{64}$/.test(h));
  if (bad) {
    throw new DataFileError(`${path}: entry ${JSON.stringify(bad[0].slice(0, 40))} is not a day (YYYY-MM-DD) with a salt (64 hex digits): restore the file, or delete the entry (that day's visitor ids then change)`);
  }
  return Object.fromEntries(entries as Array<[string, string]>);
}
