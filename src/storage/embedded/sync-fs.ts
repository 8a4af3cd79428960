// The embedded engine writes its parts without fsync, and the spool deletes a segment once the
// engine has taken its rows: after an operating-system crash or power loss within the kernel's
// write-back delay (~30 s), those rows would be gone with their segment (a disk-fault audit lost
// the last ~20 s of flushed rows to an ext4 journal abort). So a flush is durable only after a
// syncfs(2) of the engine's file system — one `sync -f` (coreutils) per flush, in a child process
// so the event loop never waits on the disk. Started with Bun.spawn: node:child_process's execFile
// (streams and a ChildProcess object around the same spawn) held the JS thread about twice as
// long per flush (~1.2 against ~0.5 ms at rest; a CPU profile at saturation had 2–4% of the JS
// thread in it).

const TIMEOUT_MS = 60_000;

/** syncfs(2) of the file system holding `dir`; rejects when the kernel reports a write-back error. */
export async function syncFileSystem(dir: string): Promise<void> {
  const child = Bun.spawn(["sync", "-f", dir], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const timer = setTimeout(() => child.kill("SIGKILL"), TIMEOUT_MS);
  try {
    const [code, stderr] = await Promise.all([child.exited, new Response(child.stderr).text()]);
    if (code !== 0) {
      const why = stderr.trim() || (child.signalCode ? `killed by ${child.signalCode}` : `exit code ${code}`);
      throw new Error(`sync -f ${dir} failed: ${why}`);
    }
  } finally {
    clearTimeout(timer);
  }
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
