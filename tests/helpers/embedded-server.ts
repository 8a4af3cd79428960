// The embedded ClickHouse HTTP endpoint (`npm run clickhouse`) as a child process, for tests that
// need ClickHouse at a URL: the conformance suite's TCP mode, and fault tests that stop the sink
// (SIGTERM or SIGKILL) and start it again on the same port and data directory.
//
//   const server = await startEmbeddedServer();        // free port, fresh temp data dir
//   const ch = createClickHouse({ url: server.url, database: "default" });
//   await server.stop("SIGKILL");                       // the sink is gone (connection refused)
//   await server.start();                               // same port, same data
//   await server.dispose();                             // stop and remove the temp dir
//
// The child runs in its own process group, so a signal reaches npm, its shell and the Bun server
// alike, and `stop` returns only once every one of them has exited (the data directory is free).
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";

const REPO_ROOT = resolve(dirname(new URL(import.meta.url).pathname), "..", "..");
const LOG_LIMIT = 64 * 1024;

/** Process groups of servers still running: killed if this process exits without stopping them. */
const liveGroups = new Set<number>();
process.on("exit", () => {
  for (const pgid of liveGroups) {
    try {
      process.kill(-pgid, "SIGKILL");
    } catch {
      // gone already
    }
  }
});

export interface EmbeddedServerOptions {
  /** Port to listen on; a free loopback port when absent. Kept across restarts. */
  port?: number;
  /** Data directory; a fresh temp dir (removed by `dispose`) when absent. */
  dataDir?: string;
  /** chdb connections ("lanes") of the server; the server's default when absent. */
  lanes?: number;
  /** How long `start` waits for `GET /ping` to answer `Ok.` (default 30 s). */
  readyTimeoutMs?: number;
  /** How long `stop("SIGTERM")` waits before it sends SIGKILL (default 10 s). */
  stopTimeoutMs?: number;
  /** Extra environment for the child. */
  env?: Record<string, string>;
  /**
   * Start the endpoint again when its engine fails by itself (exit 70, "engine failed: exiting"),
   * as the supervisor README asks for in production would (`Restart=on-failure`). An exit asked
   * for by `stop` is never restarted. Off by default: a test of that exit wants to see it.
   */
  restartOnFailure?: boolean;
}

/** How the last run of the server ended. */
export interface EmbeddedServerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface EmbeddedServer {
  /** `http://127.0.0.1:<port>`: the value for `createClickHouse({ url })` / `CLICKHOUSE_URL`. */
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  /** True between a successful `start` and the server's exit. */
  readonly running: boolean;
  /** Process id of the child (the `npm` process, leader of its process group) while it runs. */
  readonly pid: number | undefined;
  /** How the previous run ended (undefined until a run has ended). */
  readonly lastExit: EmbeddedServerExit | undefined;
  /** The previous run ended by itself (not by `stop`): its engine failed (exit 70), or it crashed. */
  readonly exitedByItself: boolean;
  /** Recent stdout and stderr of the child (all runs), for failure messages. */
  logs(): string;
  /** Resident memory (bytes) of the server's processes together (Linux /proc; 0 elsewhere or when stopped). */
  rssBytes(): number;
  /** Starts the server (again) on the same port and data dir; resolves when /ping answers. */
  start(): Promise<void>;
  /**
   * Stops the server. `SIGTERM` (default) lets it shut down cleanly and escalates to SIGKILL after
   * `stopTimeoutMs`; `SIGKILL` kills it at once, like a crash. Resolves once it has exited.
   */
  stop(signal?: "SIGTERM" | "SIGKILL"): Promise<EmbeddedServerExit>;
  /** `stop(signal)` then `start()`. */
  restart(signal?: "SIGTERM" | "SIGKILL"): Promise<void>;
  /** Stops the server and removes the data dir if this helper created it. Safe to call twice. */
  dispose(): Promise<void>;
}

/** A loopback TCP port that is free right now. */
export async function freePort(): Promise<number> {
  return await new Promise<number>((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address();
      const port = typeof address === "object" && address ? address.port : 0;
      srv.close(() => (port ? resolvePort(port) : reject(new Error("freePort: no port assigned"))));
    });
  });
}

/** The exit code of `npm run clickhouse` when its engine failed for good (src/hard-exit.ts). */
const ENGINE_FAILED = 70;

/** Spawns `npm run clickhouse` and waits until it answers `GET /ping`. */
export async function startEmbeddedServer(opts: EmbeddedServerOptions = {}): Promise<EmbeddedServer> {
  const server = new ChildEmbeddedServer(
    opts.port ?? (await freePort()),
    opts.dataDir ?? mkdtempSync(join(tmpdir(), "embedded-ch-")),
    opts.dataDir === undefined,
    opts,
  );
  try {
    await server.start();
  } catch (err) {
    await server.dispose();
    throw err;
  }
  return server;
}

class ChildEmbeddedServer implements EmbeddedServer {
  readonly url: string;
  #child: ChildProcess | undefined;
  #exited: Promise<EmbeddedServerExit> | undefined;
  #running = false;
  #exitedByItself = false;
  #lastExit: EmbeddedServerExit | undefined;
  #restarting: Promise<void> | undefined;
  #log = "";
  #disposed = false;

  constructor(
    readonly port: number,
    readonly dataDir: string,
    private readonly ownsDataDir: boolean,
    private readonly opts: EmbeddedServerOptions,
  ) {
    this.url = `http://127.0.0.1:${port}`;
  }

  get exitedByItself(): boolean {
    return this.#exitedByItself;
  }

  get running(): boolean {
    return this.#running;
  }

  get pid(): number | undefined {
    return this.#running ? this.#child?.pid : undefined;
  }

  get lastExit(): EmbeddedServerExit | undefined {
    return this.#lastExit;
  }

  logs(): string {
    return this.#log;
  }

  rssBytes(): number {
    const pgid = this.#child?.pid;
    if (pgid === undefined) return 0;
    let total = 0;
    for (const pid of groupMembers(pgid)) {
      try {
        const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
        total += Number(kb ?? 0) * 1024;
      } catch {
        // exited meanwhile
      }
    }
    return total;
  }

  /**
   * Starts the server and waits until it answers a query, not only /ping. Restarted on its data
   * dir, the endpoint has answered /ping and then hung on every query (2 of 5 runs after a
   * SIGKILL in session 5; once after a SIGTERM in a CI run of backends-down, 2026-11-28, where
   * every later test of the file then timed out). Not reproduced on demand (6 fresh restart
   * cycles, 4 runs of that file). A server that does not answer `SELECT 1` within 10 s is stopped
   * and started again, twice at most, and says so on stderr: this is the test endpoint's own
   * start-up, not the service under test. The check reads every table's row count (the second CI
   * failure, 2026-11-28, answered SELECT 1 and hung on the tables).
   */
  async start(): Promise<void> {
    await this.#restarting; // a supervisor's restart in progress (restartOnFailure) may have done it
    if (this.#running) return;
    return this.#startChecked();
  }

  async #startChecked(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      await this.#startOnce();
      if (await queryOk(this.url)) return;
      if (attempt === 3) throw new Error(`embedded server answered /ping but not a query of its tables within 10 s, ${attempt} starts:\n${this.#log}`);
      console.error(`[embedded server] ${this.url} answered /ping but not a query of its tables within 10 s; starting it again (attempt ${attempt + 1})`);
      await this.#stopNow("SIGTERM");
    }
  }

  async #startOnce(): Promise<void> {
    if (this.#disposed) throw new Error("embedded server: start after dispose");
    if (this.#child) throw new Error(`embedded server: already running (pid ${this.#child.pid})`);
    // Something else on the port would answer the readiness ping in our server's place.
    if (await portInUse(this.port)) throw new Error(`embedded server: port ${this.port} is already in use`);
    const args = ["run", "--silent", "clickhouse", "--", "--port", String(this.port), "--host", "127.0.0.1", "--data", this.dataDir];
    if (this.opts.lanes !== undefined) args.push("--lanes", String(this.opts.lanes));
    const bunDir = join(REPO_ROOT, "node_modules", ".bin");
    const child = spawn("npm", args, {
      cwd: REPO_ROOT,
      // Own process group: signals go to npm, sh and bun together (see `#signal`).
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, PATH: `${bunDir}:${process.env.PATH ?? ""}`, ...this.opts.env },
    });
    this.#child = child;
    if (child.pid !== undefined) liveGroups.add(child.pid);
    const append = (chunk: Buffer) => {
      this.#log = (this.#log + chunk.toString("utf8")).slice(-LOG_LIMIT);
    };
    child.stdout?.on("data", append);
    child.stderr?.on("data", append);
    this.#exited = new Promise<EmbeddedServerExit>((resolveExit) => {
      child.once("error", (err) => {
        append(Buffer.from(`\n[spawn error] ${err.message}\n`));
        resolveExit({ code: null, signal: null });
      });
      child.once("exit", (code, signal) => resolveExit({ code, signal }));
    }).then(async (exit) => {
      // The leader is gone; wait for the rest of its group (the Bun server) too.
      if (child.pid !== undefined) {
        await waitGroupGone(child.pid, 10_000);
        liveGroups.delete(child.pid);
      }
      // `stop` clears #running before it signals: still set, nobody asked for this exit.
      this.#exitedByItself = this.#running;
      this.#running = false;
      this.#lastExit = exit;
      if (this.#child === child) this.#child = undefined;
      if (this.#exitedByItself && exit.code === ENGINE_FAILED && this.opts.restartOnFailure && !this.#disposed) this.#restartAfterFailure();
      return exit;
    });

    const deadline = Date.now() + (this.opts.readyTimeoutMs ?? 30_000);
    let exitedEarly: EmbeddedServerExit | undefined;
    void this.#exited.then((e) => (exitedEarly = e));
    while (Date.now() < deadline) {
      if (exitedEarly) {
        throw new Error(`embedded server exited before it was ready (code ${exitedEarly.code}, signal ${exitedEarly.signal}):\n${this.#log}`);
      }
      if (await pingOk(this.url)) {
        this.#running = true;
        return;
      }
      await Bun.sleep(50);
    }
    await this.#stopNow("SIGKILL");
    throw new Error(`embedded server did not answer ${this.url}/ping within ${this.opts.readyTimeoutMs ?? 30_000} ms:\n${this.#log}`);
  }

  /** restartOnFailure: started again on its data, and said on stderr with the engine's log. */
  #restartAfterFailure(): void {
    console.error(`[embedded server] ${this.url}: the engine failed by itself (exit ${ENGINE_FAILED}); starting it again, as a supervisor would. Its log:\n${this.#log.slice(-4000)}`);
    this.#restarting = (async () => {
      try {
        // Unless a dispose, or a start of the test's own, came first.
        if (!this.#disposed && !this.#child) await this.#startChecked();
      } catch (err) {
        console.error(`[embedded server] ${this.url}: the restart after the engine's failure failed: ${String(err)}`);
      } finally {
        this.#restarting = undefined;
      }
    })();
  }

  async stop(signal: "SIGTERM" | "SIGKILL" = "SIGTERM"): Promise<EmbeddedServerExit> {
    await this.#restarting; // a supervisor's restart in progress ends first, then is stopped
    return this.#stopNow(signal);
  }

  async #stopNow(signal: "SIGTERM" | "SIGKILL"): Promise<EmbeddedServerExit> {
    const child = this.#child;
    const exited = this.#exited;
    if (!child || !exited) return this.#lastExit ?? { code: null, signal: null };
    this.#running = false;
    this.#signal(child, signal);
    if (signal === "SIGTERM") {
      const timer = setTimeout(() => this.#signal(child, "SIGKILL"), this.opts.stopTimeoutMs ?? 10_000);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    }
    return await exited;
  }

  async restart(signal: "SIGTERM" | "SIGKILL" = "SIGTERM"): Promise<void> {
    await this.stop(signal);
    await this.start();
  }

  async dispose(): Promise<void> {
    if (this.#disposed) return;
    await this.stop("SIGTERM");
    this.#disposed = true;
    if (this.ownsDataDir) rmSync(this.dataDir, { recursive: true, force: true });
  }

  #signal(child: ChildProcess, signal: NodeJS.Signals): void {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // The group is gone already.
    }
  }
}

/** True when something accepts TCP connections on the loopback `port`. */
function portInUse(port: number): Promise<boolean> {
  return new Promise((resolveInUse) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    socket.setTimeout(1_000);
    socket.once("connect", () => {
      socket.destroy();
      resolveInUse(true);
    });
    socket.once("timeout", () => {
      socket.destroy();
      resolveInUse(true);
    });
    socket.once("error", () => resolveInUse(false));
  });
}

/** True when the endpoint answers a query that touches every table (within 10 s). */
export async function queryOk(url: string): Promise<boolean> {
  try {
    // Touches every table (total_rows needs each one loaded): the hang was on tables, not on SELECT 1.
    const query = "SELECT sum(ifNull(total_rows, 0)) FROM system.tables WHERE database NOT IN ('system', 'INFORMATION_SCHEMA', 'information_schema')";
    const res = await fetch(`${url}/?query=${encodeURIComponent(query)}`, { signal: AbortSignal.timeout(10_000) });
    return res.ok && /^\d+\s*$/.test(await res.text());
  } catch {
    return false;
  }
}

async function pingOk(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/ping`, { signal: AbortSignal.timeout(1_000) });
    return res.ok && (await res.text()) === "Ok.\n";
  } catch {
    return false;
  }
}

/** Live (not zombie) processes of the group `pgid`, from /proc (empty without procfs). */
function groupMembers(pgid: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return [];
  }
  const members: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue;
    }
    const fields = statFields(stat);
    if (Number(fields[2]) === pgid && anyThreadLive(entry)) members.push(Number(entry));
  }
  return members;
}

/** Fields of /proc/.../stat from `state` on: comm may hold spaces and parentheses, so split after the last ')'. */
function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/**
 * True while some thread of process `pid` has not exited. A killed process's main thread can be a
 * zombie already while other threads still run their exit (and hold its sockets and files).
 */
function anyThreadLive(pid: string): boolean {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return false;
  }
  return tasks.some((task) => {
    try {
      const state = statFields(readFileSync(`/proc/${pid}/task/${task}/stat`, "utf8"))[0];
      return state !== "Z" && state !== "X";
    } catch {
      return false;
    }
  });
}

/**
 * True while a live process of the group `pgid` exists. A killed process whose parent died too
 * stays a zombie until init reaps it; a zombie holds no files, so it counts as gone.
 */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch {
    return false;
  }
  return existsSync("/proc/self/stat") ? groupMembers(pgid).length > 0 : true;
}

/** Waits until no live process of the group `pgid` is left; SIGKILLs the rest after `timeoutMs`. */
async function waitGroupGone(pgid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (groupAlive(pgid)) {
    if (Date.now() > deadline) {
      // Still there: kill what is left rather than leave a server bound to the data dir.
      try {
        process.kill(-pgid, "SIGKILL");
      } catch {
        return;
      }
      await Bun.sleep(50);
      return;
    }
    await Bun.sleep(20);
  }
}
