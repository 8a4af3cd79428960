/**
 * The one real Valkey of a `bun test` run.
 *
 * `tests/setup/global.ts` (preloaded through bunfig.toml) calls `startValkey()` once before any
 * test file loads and `shutdownValkey()` once at the end. Tests use:
 *
 * - `valkeyUrl()` (also in `process.env.TEST_VALKEY_URL`): `redis://127.0.0.1:<port>`.
 * - `stopValkey()` / `startValkey()`: take the server down mid-test and bring it back on the SAME
 *   port (a fresh, empty server: it runs without persistence), for "Valkey is down" tests.
 * - `freeDbPrefix()`: a name no other test in this run gets, made of `[a-z0-9_]` only, to
 *   namespace keys (`${prefix}:`, or ioredis `keyPrefix`) and anything else shared.
 * - `freeDbIndex()`: a logical database number (1..15, never 0 nor the service's default 4) that no
 *   other test in this run gets, for code whose key format is fixed and that takes a `VALKEY_DB`.
 *   There are only 14: prefer `freeDbPrefix()` where keys can be namespaced.
 *
 * Nothing here mocks Valkey: it is the real `valkey-server` binary on a loopback port.
 */
import { spawn, type Subprocess } from "bun";
import { createConnection, createServer } from "node:net";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const HOST = "127.0.0.1";
/** Valkey's default 16 logical databases, less 0 and 4 (the service's default VALKEY_DB). */
const FREE_DBS = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 1, 2, 3];
const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;

interface ValkeyState {
  binary: string | undefined;
  port: number | undefined;
  dir: string | undefined;
  proc: Subprocess | undefined;
  /** Serialises start/stop so concurrent calls cannot interleave. */
  queue: Promise<unknown>;
  nextPrefix: number;
  nextDbIndex: number;
  exitHookInstalled: boolean;
}

// Kept on globalThis so that every importer (preload and test files) sees one server even if the
// module were ever evaluated twice.
const STATE_KEY = Symbol.for("analytics.tests.valkey");
const globalSlot = globalThis as unknown as Record<symbol, ValkeyState | undefined>;
const state: ValkeyState = (globalSlot[STATE_KEY] ??= {
  binary: undefined,
  port: undefined,
  dir: undefined,
  proc: undefined,
  queue: Promise.resolve(),
  nextPrefix: 0,
  nextDbIndex: 0,
  exitHookInstalled: false,
});

export class ValkeyMissingError extends Error {
  constructor() {
    super(
      "valkey-server was not found on PATH. The tests start a real Valkey 8 on a free loopback port. " +
        "Install it (Debian bookworm: `apt-get install -t bookworm-backports valkey-server`, see README), " +
        "or run `bash tests/setup/install-valkey.sh` (what `npm test` runs first).",
    );
    this.name = "ValkeyMissingError";
  }
}

function findBinary(): string {
  if (state.binary) return state.binary;
  const found =
    Bun.which("valkey-server") ??
    ["/usr/bin/valkey-server", "/usr/local/bin/valkey-server"].find((p) => existsSync(p));
  if (!found) throw new ValkeyMissingError();
  state.binary = found;
  return found;
}

/** Asks the kernel for a loopback port that is free right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      if (address === null || typeof address === "string") {
        server.close();
        reject(new Error("could not read the port of a probe socket"));
        return;
      }
      const { port } = address;
      server.close(() => resolve(port));
    });
  });
}

/** One PING over a raw socket: true when the server answers +PONG. */
function ping(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    let settled = false;
    let received = "";
    const socket = createConnection({ host: HOST, port });
    const done = (ok: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on("connect", () => socket.write("PING\r\n"));
    socket.on("data", (chunk) => {
      received += chunk.toString("utf8");
      if (received.includes("\r\n")) done(received.startsWith("+PONG"));
    });
    socket.on("error", () => done(false));
    socket.on("close", () => done(false));
  });
}

function logTail(dir: string): string {
  try {
    const lines = readFileSync(join(dir, "valkey.log"), "utf8").trim().split("\n");
    return lines.slice(-15).join("\n");
  } catch {
    return "(no log written)";
  }
}

function installExitHook(): void {
  if (state.exitHookInstalled) return;
  state.exitHookInstalled = true;
  // "exit" handlers must be synchronous: kill without waiting, remove the scratch directory.
  process.on("exit", () => {
    killNow();
    removeDir();
  });
}

function killNow(): void {
  const proc = state.proc;
  state.proc = undefined;
  if (proc && proc.exitCode === null && proc.signalCode === null) {
    try {
      proc.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
}

function removeDir(): void {
  if (state.dir) {
    rmSync(state.dir, { recursive: true, force: true });
    state.dir = undefined;
  }
}

function serialised<T>(task: () => Promise<T>): Promise<T> {
  const run = state.queue.then(task, task);
  state.queue = run.catch(() => undefined);
  return run;
}

async function launch(port: number): Promise<Subprocess> {
  const binary = findBinary();
  const dir = (state.dir ??= mkdtempSync(join(tmpdir(), `analytics-test-valkey-${process.pid}-`)));
  const args = [
    binary,
    "--port", String(port),
    "--bind", HOST,
    "--save", "",
    "--appendonly", "no",
    "--dir", dir,
    "--daemonize", "no",
    "--logfile", join(dir, "valkey.log"),
  ];
  // On Linux, setpriv makes the kernel kill the server when this process dies, even by SIGKILL,
  // so an aborted test run leaves no Valkey behind.
  const setpriv = process.platform === "linux" ? Bun.which("setpriv") : null;
  const cmd = setpriv ? [setpriv, "--pdeathsig", "SIGKILL", ...args] : args;
  const proc = spawn(cmd, { stdin: "ignore", stdout: "ignore", stderr: "ignore" });

  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(
        `valkey-server exited (code ${proc.exitCode ?? proc.signalCode}) before answering on port ${port}:\n${logTail(dir)}`,
      );
    }
    if (await ping(port)) return proc;
    await Bun.sleep(25);
  }
  proc.kill("SIGKILL");
  await proc.exited;
  throw new Error(`valkey-server did not answer PING on port ${port} within ${READY_TIMEOUT_MS} ms:\n${logTail(dir)}`);
}

/**
 * Starts the run's Valkey (first call: on a free port; later calls: on the same port as before).
 * A no-op while it is running. Resolves once it answers PING.
 */
export function startValkey(): Promise<string> {
  return serialised(async () => {
    if (state.proc && state.proc.exitCode === null && state.proc.signalCode === null) {
      return valkeyUrl();
    }
    installExitHook();
    if (state.port === undefined) {
      // The probe port could be taken between probing and binding: try a few.
      let lastError: unknown;
      for (let attempt = 0; attempt < 5; attempt++) {
        const port = await freePort();
        try {
          state.proc = await launch(port);
          state.port = port;
          break;
        } catch (error) {
          if (error instanceof ValkeyMissingError) throw error;
          lastError = error;
        }
      }
      if (state.port === undefined) throw lastError;
    } else {
      // Same port as before, so clients configured with valkeyUrl() reconnect to it.
      state.proc = await launch(state.port);
    }
    const url = valkeyUrl();
    process.env.TEST_VALKEY_URL = url;
    process.env.TEST_VALKEY_HOST = HOST;
    process.env.TEST_VALKEY_PORT = String(state.port);
    return url;
  });
}

/**
 * Stops the Valkey (SIGTERM by default, waiting until it has exited; pass "SIGKILL" for an abrupt
 * crash). The port stays reserved for a later `startValkey()`. A no-op when it is not running.
 */
export function stopValkey(signal: "SIGTERM" | "SIGKILL" = "SIGTERM"): Promise<void> {
  return serialised(async () => {
    const proc = state.proc;
    state.proc = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill("SIGKILL"), STOP_TIMEOUT_MS);
    await proc.exited;
    clearTimeout(timer);
  });
}

/** Stops the server for good and removes its scratch directory (end of the run). */
export async function shutdownValkey(): Promise<void> {
  await stopValkey();
  removeDir();
}

export function isValkeyRunning(): boolean {
  const proc = state.proc;
  return proc !== undefined && proc.exitCode === null && proc.signalCode === null;
}

export function valkeyPort(): number {
  if (state.port === undefined) {
    throw new Error("the test Valkey has not been started: is tests/setup/global.ts preloaded (bunfig.toml)?");
  }
  return state.port;
}

export function valkeyHost(): string {
  return HOST;
}

export function valkeyUrl(): string {
  return `redis://${HOST}:${valkeyPort()}`;
}

/** A name unique in this run, `[a-z0-9_]` only, e.g. `t_k3j9_4`. */
export function freeDbPrefix(): string {
  state.nextPrefix += 1;
  return `t_${process.pid.toString(36)}${Math.random().toString(36).slice(2, 6)}_${state.nextPrefix}`;
}

/** A logical database number (1..15, not 4) that no other caller in this run gets. */
export function freeDbIndex(): number {
  const db = FREE_DBS[state.nextDbIndex];
  if (db === undefined) {
    throw new Error(`all ${FREE_DBS.length} free test Valkey databases are handed out; use freeDbPrefix() to namespace keys instead`);
  }
  state.nextDbIndex += 1;
  return db;
}
