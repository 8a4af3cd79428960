import { lstatSync, readFileSync, type Stats, statSync } from "node:fs";

// What this project writes under DATA_DIR (every tenant's rows in the spool and the embedded
// engine, the keys' hashes, the root token, the salts) is its user's alone. Every entry point that
// can create files there calls this first: the service (main.ts), `npm run migrate` and
// `npm run clickhouse`. A directory that already exists keeps its mode.
export function keepFilesPrivate(): void {
  process.umask(0o077);
}

/** A small file under DATA_DIR that is there but unusable (not a regular file, too large, unreadable): the operator fixes or deletes it. */
export class DataFileError extends Error {}

/**
 * The text of a small regular file, or undefined when there is none. Anything else at the path (a
 * directory, a FIFO or device that would block or never end, a link loop or a dangling link, a file
 * past `maxBytes`, one this user may not read) is a DataFileError naming the path, for one line at start.
 */
export function readSmallFile(path: string, maxBytes: number): string | undefined {
  let stats: Stats;
  try {
    stats = statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" && !linkExists(path)) return undefined;
    throw new DataFileError(`${path} cannot be read (${code === "ENOENT" ? "a dangling link" : code}): fix or delete it`);
  }
  if (!stats.isFile()) throw new DataFileError(`${path} is not a regular file: fix or delete it`);
  if (stats.size > maxBytes) throw new DataFileError(`${path} is larger than ${maxBytes} bytes: not the file this service wrote; fix or delete it`);
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new DataFileError(`${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)}): fix or delete it`);
  }
}

/** Whether there is anything at `path`, a link that leads nowhere included (lstat, not stat). */
export function linkExists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
