// Start-up failures the operator can fix (a busy port, an unusable or full DATA_DIR): the one line
// main.ts prints before exiting with code 2, instead of a stack.
import { accessSync, constants, type Stats, statfsSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "./config.ts";
import { RootTokenFileError } from "./auth/root-token.ts";
import { firstLine, SYSTEM_FAULT } from "./errors.ts";
import { DataFileError, linkExists } from "./private-files.ts";

/** The line for `err`, or undefined when it is not one of those failures (a bug: let it throw). */
export function startupMessage(err: unknown, config: Pick<Config, "port" | "host" | "dataDir">): string | undefined {
  const e = err as { code?: unknown; message?: unknown; path?: unknown };
  // The embedded engine could not open its directory (libchdb prints its own reason on the line
  // before): a full disk (no space or no inodes for its status file), or, most often, the lock
  // another process holds on it.
  if (e.code === "CHDB_CONNECTION") {
    const readOnly = notWritable(config.dataDir);
    if (readOnly) return `the embedded ClickHouse could not open DATA_DIR ${config.dataDir}: it cannot be written (${readOnly})`;
    if (diskFull(config.dataDir)) return `the embedded ClickHouse could not open DATA_DIR ${config.dataDir}: its disk has no free space or inodes`;
    // The engine's lock file: something else in its place is no other process's lock.
    const status = join(config.dataDir, "clickhouse", "status");
    const odd = notAFile(status);
    if (odd) return `the embedded ClickHouse could not open DATA_DIR ${config.dataDir}: ${status} is ${odd}, not the engine's lock file: delete it`;
    return `the embedded ClickHouse could not open DATA_DIR ${config.dataDir}: is another process using it? One process per data directory; several instances need CLICKHOUSE_URL`;
  }
  if (err instanceof RootTokenFileError) return `${err.message} (DATA_DIR; or set ANALYTICS_ROOT_TOKEN)`;
  if (err instanceof DataFileError) return `${err.message} (DATA_DIR)`;
  const at = e.path ? `: ${String(e.path)}` : "";
  const known: Record<string, string> = {
    EADDRINUSE: `port ${config.port} is already in use (PORT)`,
    EADDRNOTAVAIL: `cannot listen on ${config.host} (HOST): no such local address`,
    ENOTFOUND: `cannot listen on ${config.host} (HOST): no such host name`,
    EAI_AGAIN: `cannot listen on ${config.host} (HOST): the host name did not resolve (DNS not answering)`,
    EINVAL: `cannot listen on ${config.host}:${config.port} (HOST, PORT)`,
    EACCES: `permission denied${e.path ? ` on ${String(e.path)}` : ""} (DATA_DIR, or a port below 1024)`,
    ENOENT: `no such file or directory${at} (DATA_DIR)`,
    ENOTDIR: `not a directory${at} (DATA_DIR: a part of its path is a file)`,
    EEXIST: `something other than a directory is in the way${at} (DATA_DIR: a file, FIFO or link where a directory belongs)`,
    ELOOP: `a loop of symbolic links${at} (DATA_DIR)`,
    EISDIR: `a directory where a file belongs${at} (DATA_DIR)`,
    EROFS: `read-only file system${at} (DATA_DIR)`,
    ENOSPC: `no space left on the device${at} (DATA_DIR: free space or inodes)`,
    EDQUOT: `disk quota exceeded${at} (DATA_DIR)`,
    EIO: `input/output error${at} (DATA_DIR: the disk is failing)`,
  };
  if (typeof e.code === "string" && known[e.code]) return known[e.code];
  // The engine's own disk faults (a migration that cannot write its files, no room to reserve)
  // come as its errors, the cause of a MigrationError: named by their first line.
  for (let c = err as { message?: unknown; cause?: unknown } | undefined, depth = 0; c && typeof c === "object" && depth < 5; c = c.cause as typeof c, depth++) {
    if (typeof c.message === "string" && SYSTEM_FAULT.test(c.message)) {
      return `the disk under DATA_DIR (or the ClickHouse server's) refused a write: ${firstLine(c.message)} (free space or inodes, check permissions)`;
    }
  }
  return undefined;
}

/** What is at `path` when it is there and not a regular file ("a directory", …); undefined otherwise. */
function notAFile(path: string): string | undefined {
  let stats: Stats;
  try {
    stats = statSync(path);
  } catch {
    // Not there, or a link that leads nowhere (dangling, or a loop).
    return linkExists(path) ? "a symbolic link that leads to no file" : undefined;
  }
  if (stats.isFile()) return undefined;
  if (stats.isDirectory()) return "a directory";
  if (stats.isFIFO()) return "a FIFO";
  return "not a regular file";
}

/** Why `dir` (or its engine directory) cannot be written (EROFS, EACCES), or undefined when it can. */
function notWritable(dir: string): string | undefined {
  for (const d of [dir, join(dir, "clickhouse")]) {
    try {
      accessSync(d, constants.W_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EROFS") return "a read-only file system";
      if (code === "EACCES" || code === "EPERM") return "permission denied";
    }
  }
  return undefined;
}

/** True when the file system under `dir` has no block or no inode left for an unprivileged write. */
function diskFull(dir: string): boolean {
  try {
    const fs = statfsSync(dir);
    return fs.bavail === 0 || (fs.files > 0 && fs.ffree === 0);
  } catch {
    return false;
  }
}
