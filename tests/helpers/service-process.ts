// The service as a CHILD process (`bun src/main.ts`), for tests that must SIGKILL it, SIGTERM it,
// or run two of them. The test process keeps its one embedded engine for itself, so the child
// talks to a ClickHouse endpoint at a URL (tests/helpers/embedded-server.ts) and the test reads
// that endpoint over HTTP too.
//
//   const ch = await startEmbeddedServer();
//   const database = await migrateEndpoint(ch.url);            // explicit step against a real endpoint
//   const svc = await startServiceProcess({ clickhouseUrl: ch.url, database });
//   const key = await svc.createKey({ type: "secret", service_id: "shop" });
//   await svc.kill("SIGKILL"); await svc.restart();            // same port, same DATA_DIR (spool)
//   await svc.dispose();                                       // stop (SIGKILL if needed), remove the temp dir
import { createClient, type ClickHouseClient } from "@clickhouse/client-web";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { BUN_FLAGS, RUNTIME_ENV } from "../../src/runtime-flags.ts";
import { migrate } from "../../src/storage/migrate.ts";
import { uniqueDatabase } from "./clickhouse.ts";
import { afterAll, beforeAll } from "bun:test";
import { freePort, queryOk, startEmbeddedServer, type EmbeddedServer } from "./embedded-server.ts";

const REPO_ROOT = resolve(dirname(new URL(import.meta.url).pathname), "..", "..");
const BUN = join(REPO_ROOT, "node_modules", ".bin", "bun");
const LOG_LIMIT = 256 * 1024;

export const PROCESS_ROOT_TOKEN = "rt_durability_root_token_0123456789abcdef";

/** Children still running: killed if the test process exits without stopping them. */
const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of live) {
    try {
      child.kill("SIGKILL");
    } catch {
      // gone already
    }
  }
});

export interface ServiceProcessOptions {
  /** CLICKHOUSE_URL of the endpoint (required: the test process owns the embedded engine). */
  clickhouseUrl: string;
  /** CLICKHOUSE_DATABASE; a unique name when absent (migrate it first: see `migrateEndpoint`). */
  database?: string;
  /** Extra or overriding environment (SPOOL_MAX_BYTES, VALKEY_URL, SHUTDOWN_TIMEOUT_MS, ...). */
  env?: Record<string, string>;
  /** Port; a free loopback port when absent. Kept across restarts. */
  port?: number;
  /** What `start` waits for: `/readyz` 200 (default) or `/healthz` 200 (the sink may be down). */
  waitFor?: "ready" | "health";
  /** How long `start` waits (default 30 s). */
  startTimeoutMs?: number;
}

export interface ServiceExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServiceProcess {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  readonly database: string;
  /** Process id while running. */
  readonly pid: number | undefined;
  readonly running: boolean;
  /** How the last run ended (undefined until a run has ended). */
  readonly lastExit: ServiceExit | undefined;
  /** Starts (again) on the same port and data dir; resolves when `/readyz` (or `/healthz`) is 200. */
  start(waitFor?: "ready" | "health"): Promise<void>;
  /** Sends `signal` and resolves with the exit once the process is gone. */
  kill(signal?: NodeJS.Signals): Promise<ServiceExit>;
  /** `kill(signal)` (default SIGKILL) then `start()`. */
  restart(opts?: { signal?: NodeJS.Signals; waitFor?: "ready" | "health" }): Promise<void>;
  /** Resident memory of the process in bytes (/proc/<pid>/status VmRSS; 0 when not running). */
  rssBytes(): number;
  /** Stdout and stderr of every run so far (the tail), for failure messages. */
  logs(): string;
  /** A key through `POST /v1/keys` with the root token; returns the plaintext key. */
  createKey(body: Record<string, unknown>): Promise<string>;
  /** fetch() relative to the service URL. */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  /** Stops the process (SIGKILL if it is still up) and removes the data dir. Safe twice. */
  dispose(): Promise<void>;
}

/** A client-web client on an endpoint (for the test's own reads and for migrations). */
export function endpointClient(url: string, database = "default", requestTimeoutMs = 60_000): ClickHouseClient {
  return createClient({
    url,
    database,
    request_timeout: requestTimeoutMs,
    clickhouse_settings: { date_time_output_format: "iso", output_format_json_quote_64bit_integers: 0 },
  });
}

/** Applies the schema to a fresh database on the endpoint (the explicit migrate step); returns its name. */
export async function migrateEndpoint(url: string, database = uniqueDatabase("dur"), requestTimeoutMs = 60_000): Promise<string> {
  const admin = endpointClient(url, "default", requestTimeoutMs);
  try {
    await migrate(admin, { database });
  } finally {
    await admin.close();
  }
  return database;
}

/** Spawns the service and waits until it is ready. */
export async function startServiceProcess(opts: ServiceProcessOptions): Promise<ServiceProcess> {
  const svc = new ChildService(opts.port ?? (await freePort()), mkdtempSync(join(tmpdir(), "analytics-svcproc-")), opts.database ?? uniqueDatabase("dur"), opts);
  try {
    await svc.start();
  } catch (err) {
    await svc.dispose();
    throw err;
  }
  return svc;
}

class ChildService implements ServiceProcess {
  readonly url: string;
  #child: ChildProcess | undefined;
  #exited: Promise<ServiceExit> | undefined;
  #lastExit: ServiceExit | undefined;
  #log = "";
  #disposed = false;
  #runs = 0;

  constructor(
    readonly port: number,
    readonly dataDir: string,
    readonly database: string,
    private readonly opts: ServiceProcessOptions,
  ) {
    this.url = `http://127.0.0.1:${port}`;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  get lastExit(): ServiceExit | undefined {
    return this.#lastExit;
  }

  logs(): string {
    return this.#log;
  }

  #append(text: string): void {
    this.#log = (this.#log + text).slice(-LOG_LIMIT);
  }

  async start(waitFor = this.opts.waitFor ?? "ready"): Promise<void> {
    if (this.#disposed) throw new Error("service process: start after dispose");
    if (this.#child) throw new Error(`service process: already running (pid ${this.#child.pid})`);
    const env: Record<string, string> = {
      ...RUNTIME_ENV,
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: process.env.HOME ?? tmpdir(),
      NODE_ENV: "test",
      PORT: String(this.port),
      HOST: "127.0.0.1",
      DATA_DIR: this.dataDir,
      CLICKHOUSE_URL: this.opts.clickhouseUrl,
      CLICKHOUSE_DATABASE: this.database,
      ANALYTICS_ROOT_TOKEN: PROCESS_ROOT_TOKEN,
      FLUSH_INTERVAL_MS: "200",
      LOG_LEVEL: "warn",
      ...this.opts.env,
    };
    // On Linux, setpriv makes the kernel kill the child when the test process dies (even by SIGKILL);
    // it execs, so the pid is the service's own.
    const setpriv = process.platform === "linux" ? Bun.which("setpriv") : null;
    const service = [BUN, ...BUN_FLAGS, "src/main.ts"];
    const cmd = setpriv ? [setpriv, "--pdeathsig", "SIGKILL", ...service] : service;
    const run = ++this.#runs;
    this.#append(`\n--- run ${run} (port ${this.port}) ---\n`);
    const child = spawn(cmd[0]!, cmd.slice(1), { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"], env });
    this.#child = child;
    live.add(child);
    child.stdout?.on("data", (c: Buffer) => this.#append(c.toString("utf8")));
    child.stderr?.on("data", (c: Buffer) => this.#append(c.toString("utf8")));
    this.#exited = new Promise<ServiceExit>((res) => {
      child.once("error", (err) => {
        this.#append(`\n[spawn error] ${err.message}\n`);
        res({ code: null, signal: null });
      });
      child.once("exit", (code, signal) => res({ code, signal }));
    }).then((exit) => {
      live.delete(child);
      this.#append(`--- run ${run} exited: code ${exit.code}, signal ${exit.signal} ---\n`);
      this.#lastExit = exit;
      if (this.#child === child) this.#child = undefined;
      return exit;
    });

    const timeoutMs = this.opts.startTimeoutMs ?? 30_000;
    const deadline = Date.now() + timeoutMs;
    let early: ServiceExit | undefined;
    void this.#exited.then((e) => (early = e));
    const path = waitFor === "ready" ? "/readyz" : "/healthz";
    while (Date.now() < deadline) {
      if (early) throw new Error(`service exited before it was ready (code ${early.code}, signal ${early.signal}):\n${this.#log.slice(-8000)}`);
      try {
        const res = await fetch(this.url + path, { signal: AbortSignal.timeout(2_000) });
        await res.arrayBuffer();
        if (res.status === 200) return;
      } catch {
        // not listening yet
      }
      await Bun.sleep(50);
    }
    await this.kill("SIGKILL");
    throw new Error(`service did not answer 200 on ${path} within ${timeoutMs} ms:\n${this.#log.slice(-8000)}`);
  }

  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<ServiceExit> {
    const child = this.#child;
    const exited = this.#exited;
    if (!child || !exited) return this.#lastExit ?? { code: null, signal: null };
    child.kill(signal);
    return await exited;
  }

  async restart(opts: { signal?: NodeJS.Signals; waitFor?: "ready" | "health" } = {}): Promise<void> {
    await this.kill(opts.signal ?? "SIGKILL");
    await this.start(opts.waitFor);
  }

  rssBytes(): number {
    const pid = this.#child?.pid;
    if (pid === undefined) return 0;
    try {
      const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
      return Number(kb ?? 0) * 1024;
    } catch {
      return 0;
    }
  }

  fetch(path: string, init?: RequestInit): Promise<Response> {
    return fetch(this.url + path, init);
  }

  async createKey(body: Record<string, unknown>): Promise<string> {
    const res = await this.fetch("/v1/keys", {
      method: "POST",
      headers: { Authorization: `Bearer ${PROCESS_ROOT_TOKEN}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (res.status !== 201) throw new Error(`key creation failed: ${res.status} ${await res.text()}`);
    return ((await res.json()) as { key: string }).key;
  }

  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    if (this.#child) {
      const exited = this.#exited!;
      this.#child.kill("SIGKILL");
      await exited;
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** What a durability test file shares: a ClickHouse endpoint (child process) with a migrated database. */
export interface SinkFixture {
  ch: EmbeddedServer;
  client: ClickHouseClient;
  database: string;
  /**
   * Starts a service process on this endpoint and database; it is disposed after the file.
   * `clickhouseUrl` may name another way to the same endpoint (a fault proxy in front of it).
   */
  startService(opts?: Omit<ServiceProcessOptions, "clickhouseUrl" | "database"> & { clickhouseUrl?: string }): Promise<ServiceProcess>;
  /**
   * When the endpoint exited by itself (its engine failed: it exits 70) or runs but answers no
   * query of its tables, prints its log, starts it again and resolves true; else false (also when
   * a test stopped it on purpose).
   */
  heal(): Promise<boolean>;
}

/** Registers the file's beforeAll/afterAll for a SinkFixture; its fields are set once beforeAll ran. */
export function useSinkFixture(): SinkFixture {
  const services: ServiceProcess[] = [];
  const fixture = {
    // The engine's process answered every query with "The server is shutting down due to a fatal
    // error" for good, some time after a SIGTERM restart (CI, 2026-11-30: the service under test
    // then waited for ClickHouse, and every later test of the file timed out on its service's
    // /readyz). That is what a fatal signal in one of the engine's threads leaves; the endpoint now
    // exits (70) then. The test endpoint failing, not the service: each service start checks it first.
    async heal() {
      const exited = fixture.ch.exitedByItself && !fixture.ch.running;
      if (!exited && (!fixture.ch.running || (await queryOk(fixture.ch.url)))) return false;
      console.error(`[sink fixture] the engine ${exited ? `exited by itself (${JSON.stringify(fixture.ch.lastExit)})` : "runs but answers no query"}; starting it again. Its log:\n${fixture.ch.logs().slice(-4000)}`);
      if (exited) await fixture.ch.start();
      else await fixture.ch.restart("SIGTERM");
      return true;
    },
    async startService(opts = {}) {
      await fixture.heal();
      const start = () => startServiceProcess({ clickhouseUrl: fixture.ch.url, ...opts, database: fixture.database });
      let s: ServiceProcess;
      try {
        s = await start();
      } catch (err) {
        // CI, 2026-12-02: a service warmed up on a fresh endpoint, then its /readyz pings (which the
        // endpoint answers without its engine) went unanswered for 30 s. When the endpoint is what
        // stopped answering, that is the fixture failing, not the service: heal and start once more.
        // A service that fails beside a healthy endpoint still fails the test.
        if (!(await fixture.heal())) throw err;
        console.error(`[sink fixture] a service did not get ready while the endpoint answered no query; started again after healing it. First error: ${String(err).slice(0, 300)}`);
        s = await start();
      }
      services.push(s);
      return s;
    },
  } as SinkFixture;
  beforeAll(async () => {
    // A migration statement has failed inside the engine's process three times in CI: twice "The
    // server is shutting down due to a fatal error" during an INSERT … SELECT of a migration, once
    // that INSERT answering nothing for 60 s on a loaded machine (its log said nothing more). A
    // full migration takes a few seconds; this set-up is not what the files test, so it gets a
    // second engine once, and says so (the engine's log is printed either way).
    for (let attempt = 1; ; attempt++) {
      const t0 = performance.now();
      fixture.ch = await startEmbeddedServer({ restartOnFailure: true });
      const t1 = performance.now();
      try {
        fixture.database = await migrateEndpoint(fixture.ch.url, undefined, 30_000);
      } catch (err) {
        console.error(`[sink fixture] migration failed (attempt ${attempt} of 2): ${String(err)}; the engine's log:\n${fixture.ch.logs()}`);
        await fixture.ch.dispose();
        if (attempt === 2) throw err;
        continue;
      }
      if (performance.now() - t0 > 5_000) console.error(`[sink fixture] slow set-up: server ${Math.round(t1 - t0)} ms, migration ${Math.round(performance.now() - t1)} ms`);
      break;
    }
    fixture.client = endpointClient(fixture.ch.url, fixture.database);
    // Hooks default to 5 s: a server start plus a full migration can take longer on a busy machine.
  }, 90_000);
  afterAll(async () => {
    for (const s of services) await s.dispose();
    await fixture.client?.close();
    await fixture.ch?.dispose();
  }, 60_000);
  return fixture;
}
