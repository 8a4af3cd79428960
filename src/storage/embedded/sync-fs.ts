// The embedded engine writes its parts without fsync, and the spool deletes a segment once the
// engine has taken its rows: after an operating-system crash or power loss within the kernel's
// write-back delay (~30 s), those rows would be gone with their segment (a disk-fault audit lost
// the last ~20 s of flushed rows to an ext4 journal abort). So a flush is durable only after a
// syncfs(2) of the engine's file system — one `sync -f` (coreutils) per flush, in a child process
// so the event loop never waits on the disk.
import { execFile } from "node:child_process";

/** syncfs(2) of the file system holding `dir`; rejects when the kernel reports a write-back error. */
export function syncFileSystem(dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile("sync", ["-f", dir], { timeout: 60_000 }, (error, _stdout, stderr) => {
      if (error) reject(new Error(`sync -f ${dir} failed: ${String(stderr).trim() || error.message}`, { cause: error }));
      else resolve();
    });
  });
}

/**
 * The flush's durability step for `dir`, or undefined (with a warning) where `sync -f` does not
 * work (not Linux, or no coreutils): rows then rely on the OS write-back, as before.
 */
export async function fileSystemBarrier(dir: string, warn: (message: string, fields: Record<string, unknown>) => void): Promise<(() => Promise<void>) | undefined> {
  try {
    await syncFileSystem(dir);
    return () => syncFileSystem(dir);
  } catch (error) {
    warn("no syncfs here (coreutils `sync -f`): flushed rows are durable only after the OS writes them back", { error: String(error) });
    return undefined;
  }
}
