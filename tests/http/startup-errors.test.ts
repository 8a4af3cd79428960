// Start-up failures the operator can fix get one line naming the setting and exit code 2 (as
// configuration errors do), not a stack: a port already in use, a DATA_DIR that cannot be used.
import { expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ClickHouseError } from "@clickhouse/client-web";
import { BUN_FLAGS } from "../../src/runtime-flags.ts";
import { startupMessage } from "../../src/startup-errors.ts";
import { MigrationError } from "../../src/storage/migrate.ts";

async function start(env: Record<string, string>) {
  const proc = Bun.spawn([process.execPath, ...BUN_FLAGS, "src/main.ts"], {
    env: { PATH: process.env.PATH ?? "", ANALYTICS_ROOT_TOKEN: "rt_startup_errors_0123456789abcdef", ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const timer = setTimeout(() => proc.kill(), 30_000);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

test("a port already in use: one line naming PORT, exit 2", async () => {
  const busy = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const dir = mkdtempSync(join(tmpdir(), "startup-port-"));
  try {
    const { code, stderr } = await start({ PORT: String(busy.port), HOST: "127.0.0.1", DATA_DIR: dir });
    expect(code).toBe(2);
    expect(stderr.trim()).toBe(`start-up error: port ${busy.port} is already in use (PORT)`);
  } finally {
    busy.stop(true);
    rmSync(dir, { recursive: true, force: true });
  }
}, 40_000);

test("a DATA_DIR that cannot be created: one line naming DATA_DIR, exit 2", async () => {
  const { code, stderr } = await start({ PORT: "3999", HOST: "127.0.0.1", DATA_DIR: "/proc/no-such-dir" });
  expect(code).toBe(2);
  expect(stderr.trim()).toMatch(/^start-up error: .*\(DATA_DIR\)$/);
}, 40_000);

// Operator audit: these printed a stack and exited 1, or named the wrong variable.
test("a DATA_DIR below a file (ENOTDIR): one line naming DATA_DIR, exit 2", async () => {
  const dir = mkdtempSync(join(tmpdir(), "startup-notdir-"));
  try {
    writeFileSync(join(dir, "afile"), "");
    const { code, stderr } = await start({ PORT: "3999", HOST: "127.0.0.1", DATA_DIR: join(dir, "afile", "sub") });
    expect(code).toBe(2);
    expect(stderr.trim()).toBe(`start-up error: not a directory: ${join(dir, "afile", "sub", "clickhouse")} (DATA_DIR: a part of its path is a file)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 40_000);

test("a damaged DATA_DIR/root-token (too short, or a directory): one line, exit 2", async () => {
  const dir = mkdtempSync(join(tmpdir(), "startup-token-"));
  try {
    writeFileSync(join(dir, "root-token"), "short\n");
    const damaged = await start({ PORT: "3999", HOST: "127.0.0.1", DATA_DIR: dir, ANALYTICS_ROOT_TOKEN: "" });
    expect(damaged.code).toBe(2);
    expect(damaged.stderr.trim().split("\n")).toEqual([
      `start-up error: ${join(dir, "root-token")} does not hold a root token (24 or more visible ASCII characters on one line): fix or delete it (DATA_DIR; or set ANALYTICS_ROOT_TOKEN)`,
    ]);
    rmSync(join(dir, "root-token"));
    mkdirSync(join(dir, "root-token"));
    const directory = await start({ PORT: "3999", HOST: "127.0.0.1", DATA_DIR: dir, ANALYTICS_ROOT_TOKEN: "" });
    expect(directory.code).toBe(2);
    expect(directory.stderr.trim().split("\n")).toEqual([
      `start-up error: ${join(dir, "root-token")} is not a regular file: fix or delete it (DATA_DIR; or set ANALYTICS_ROOT_TOKEN)`,
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

test("a HOST name that does not resolve: one line naming HOST, exit 2, nothing created under DATA_DIR", async () => {
  const dir = join(mkdtempSync(join(tmpdir(), "startup-host-")), "data");
  try {
    const { code, stderr } = await start({ PORT: "3999", HOST: "no-such-host.invalid", DATA_DIR: dir });
    expect(code).toBe(2);
    expect(stderr.trim()).toMatch(/^start-up error: cannot listen on no-such-host\.invalid \(HOST\): /);
    expect(existsSync(dir)).toBe(false);
  } finally {
    rmSync(join(dir, ".."), { recursive: true, force: true });
  }
}, 40_000);

// Found by the crash re-verification: a second process on a data directory in use printed chdb's
// stack trace.
test("a DATA_DIR in use by another process (embedded engine): the start waits for it (bounded), then a line naming DATA_DIR after libchdb's own, exit 2, no stack", async () => {
  const dir = mkdtempSync(join(tmpdir(), "startup-busy-"));
  const freePort = () => {
    const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = probe.port;
    probe.stop(true);
    return String(port);
  };
  const first = Bun.spawn([process.execPath, ...BUN_FLAGS, "src/main.ts"], {
    env: { PATH: process.env.PATH ?? "", ANALYTICS_ROOT_TOKEN: "rt_startup_errors_0123456789abcdef", PORT: freePort(), HOST: "127.0.0.1", DATA_DIR: dir },
    stdout: "pipe",
    stderr: "pipe",
  });
  try {
    // Wait until the first one listens (its engine holds the directory's lock from then on).
    const reader = first.stdout.getReader();
    let out = "";
    while (!out.includes('"listening"')) {
      const { value, done } = await reader.read();
      if (done) break;
      out += new TextDecoder().decode(value);
    }
    // SHUTDOWN_TIMEOUT_MS=0: it waits 5 s for the holder (a previous service still stopping?).
    const started = Date.now();
    const { code, stdout, stderr } = await start({ PORT: freePort(), HOST: "127.0.0.1", DATA_DIR: dir, SHUTDOWN_TIMEOUT_MS: "0" });
    expect(Date.now() - started).toBeGreaterThanOrEqual(5_000);
    expect(stdout).toContain(`"msg":"DATA_DIR is held by another service process (a previous one still stopping, or one still running): waiting for it to stop","pid":${first.pid}`);
    expect(code).toBe(2);
    expect(stderr).not.toContain("ChdbConnectionError");
    expect(stderr.trim().split("\n").at(-1)).toBe(`start-up error: the embedded ClickHouse could not open DATA_DIR ${dir}: is another process using it? One process per data directory; several instances need CLICKHOUSE_URL`);
  } finally {
    first.kill("SIGTERM");
    await first.exited;
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

// Found by the disk-full audit: starting on a full disk printed a stack and exited 1. A full disk
// cannot be made here without root, so these are the errors it produced, fed to the same mapping.
// Round-3 re-audit: a file or a link loop where DATA_DIR's clickhouse/ or spool/ belongs crashed the start with a stack.
test("a file or a link loop in the way of a DATA_DIR directory: one line naming the path", () => {
  const cfg = { port: 3004, host: "0.0.0.0", dataDir: "/d" };
  const fsError = (code: string, path: string) => Object.assign(new Error(`${code}: mkdir '${path}'`), { code, path });
  expect(startupMessage(fsError("EEXIST", "/d/clickhouse"), cfg)).toBe("something other than a directory is in the way: /d/clickhouse (DATA_DIR: a file, FIFO or link where a directory belongs)");
  expect(startupMessage(fsError("ELOOP", "/d/spool"), cfg)).toBe("a loop of symbolic links: /d/spool (DATA_DIR)");
});

// Round-2 re-audit: an existing DATA_DIR on a read-only mount was reported as "is another process using it?".
test("the engine could not open a DATA_DIR it cannot write: the line says so, not that another process holds it", () => {
  const engineError = Object.assign(new Error("chdb connection failed"), { code: "CHDB_CONNECTION" });
  // /proc/1 cannot be written by anyone (EPERM even for root), like a read-only mount (EROFS).
  expect(startupMessage(engineError, { port: 3004, host: "0.0.0.0", dataDir: "/proc/1" })).toBe("the embedded ClickHouse could not open DATA_DIR /proc/1: it cannot be written (permission denied)");
  const writable = mkdtempSync(join(tmpdir(), "startup-writable-"));
  try {
    expect(startupMessage(engineError, { port: 3004, host: "0.0.0.0", dataDir: writable })).toContain("is another process using it?");
  } finally {
    rmSync(writable, { recursive: true, force: true });
  }
});

// Third re-audit: a directory where the engine's lock file belongs was blamed on another process.
test("the engine could not open DATA_DIR because something other than a file is its lock file's place: the line names it", () => {
  const engineError = Object.assign(new Error("chdb connection failed"), { code: "CHDB_CONNECTION" });
  const dataDir = mkdtempSync(join(tmpdir(), "startup-status-"));
  const status = join(dataDir, "clickhouse", "status");
  const config = { port: 3004, host: "0.0.0.0", dataDir };
  try {
    mkdirSync(status, { recursive: true });
    expect(startupMessage(engineError, config)).toBe(`the embedded ClickHouse could not open DATA_DIR ${dataDir}: ${status} is a directory, not the engine's lock file: delete it`);
    rmSync(status, { recursive: true });
    symlinkSync(join(dataDir, "nowhere"), status);
    expect(startupMessage(engineError, config)).toContain(`${status} is a symbolic link that leads to no file`);
    rmSync(status);
    writeFileSync(status, "PID: 1\n"); // a lock file: then it is another process
    expect(startupMessage(engineError, config)).toContain("is another process using it?");
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test("a full or failing disk under DATA_DIR: one line naming DATA_DIR, whether the service or the engine hit it", () => {
  const config = { port: 3004, host: "0.0.0.0", dataDir: "/data" };
  const mkdirFull = Object.assign(new Error("ENOSPC: no space left on device, mkdir '/mnt/x/d5a'"), { code: "ENOSPC", path: "/mnt/x/d5a" });
  expect(startupMessage(mkdirFull, config)).toBe("no space left on the device: /mnt/x/d5a (DATA_DIR: free space or inodes)");
  const engine = new ClickHouseError({ message: 'std::__1::filesystem::filesystem_error: filesystem error: in create_directories: No space left on device ["/mnt/x/d5b/clickhouse/metadata"]\nstack…', code: "1001", type: "STD_EXCEPTION" });
  const migration = new MigrationError("schema_migrations: could not be created", "01-database.sql", { cause: engine });
  expect(startupMessage(migration, config)).toBe(
    'the disk under DATA_DIR (or the ClickHouse server\'s) refused a write: std::__1::filesystem::filesystem_error: filesystem error: in create_directories: No space left on device ["/mnt/x/d5b/clickhouse/metadata"] (free space or inodes, check permissions)',
  );
  expect(startupMessage(new ClickHouseError({ message: "Cannot reserve 1.00 MiB, not enough space.", code: "243", type: "NOT_ENOUGH_SPACE" }), config)).toContain("refused a write: Cannot reserve 1.00 MiB");
  expect(startupMessage(new TypeError("undefined is not a function"), config)).toBeUndefined(); // a bug still throws
});
