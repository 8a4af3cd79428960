// Child processes of the benchmark: the service (as production runs it), the B0/B1 baselines,
// the embedded ClickHouse over HTTP (`npm run clickhouse`), and the counting process. Every child
// gets PR_SET_PDEATHSIG (via setpriv) so none outlives the benchmark, and is killed on exit too.
import { spawn, type Subprocess } from "bun";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { BUN_FLAGS, RUNTIME_ENV } from "../../src/runtime-flags.ts";

export const REPO = resolve(import.meta.dir, "..", "..");
// Scratch space (data directories, logs, profiles, snapshots): git-ignored, and outside the
// directories tsconfig.json type-checks (snapshots hold whole copies of src/).
export const WORK = join(REPO, ".tmp", "bench");
export const BUN = process.execPath;
export const ROOT_TOKEN = "bench-root-token-0123456789abcdef0123";
const SETPRIV = Bun.which("setpriv");

/**
 * Where the service's code is run from: a snapshot taken when the benchmark starts (see
 * bench/lib/snapshot.ts), so that edits others make to the working tree meanwhile cannot change
 * the code under test half-way through a run.
 */
let srcRoot = REPO;
export function setSourceRoot(dir: string): void {
  srcRoot = dir;
}
export function sourceRoot(): string {
  return srcRoot;
}

const live = new Set<Subprocess>();
process.on("exit", () => {
  for (const p of live) {
    try {
      p.kill("SIGKILL");
    } catch {}
  }
});

/** A loopback port that is free right now. */
export async function freePort(): Promise<number> {
  return await new Promise<number>((res, rej) => {
    const srv = createServer();
    srv.on("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => res(port));
    });
  });
}

/** The environment a child gets: nothing of ours (no CLICKHOUSE_URL, VALKEY_URL leaking in). */
function baseEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of ["PATH", "HOME", "LANG", "TMPDIR"]) if (process.env[k]) env[k] = process.env[k]!;
  return { ...env, ...extra };
}

/** Memory and CPU of a live process, from /proc. */
export interface ProcStats {
  rssBytes: number;
  hwmBytes: number;
  cpuSeconds: number;
}

export function procStats(pid: number): ProcStats {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)\\s+kB`, "m").exec(status)?.[1] ?? 0) * 1024;
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { rssBytes: kb("VmRSS"), hwmBytes: kb("VmHWM"), cpuSeconds: (Number(f[11]) + Number(f[12])) / 100 };
  } catch {
    return { rssBytes: 0, hwmBytes: 0, cpuSeconds: 0 };
  }
}

/**
 * CPU seconds of a process per group of its threads, from /proc/<pid>/task: the JS thread (the
 * main thread, whose tid is the pid: HTTP, routing, the ingest path, the flush's JS side), the
 * embedded engine's own threads (ClickHouse names them: ThreadPool, MergeMutate, BgSchPool, …),
 * Bun's work pool ("Bun Pool N": chdb's async calls execute their query there, and async file
 * I/O such as the spool's fdatasync), and the runtime (JIT, GC helpers, allocator). Threads that
 * exited between two readings are missing from the later one, so a difference can undercount.
 */
export type ThreadGroup = "js" | "engine" | "pool" | "runtime";
const RUNTIME_THREADS = /^(JITWorker|HeapHelper|JSCWarmUp|mi-scavenger|.*Collector Thread|Heap Helper.*)$/;
export function threadCpu(pid: number): Record<ThreadGroup, number> {
  const out: Record<ThreadGroup, number> = { js: 0, engine: 0, pool: 0, runtime: 0 };
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const seconds = (Number(f[11]) + Number(f[12])) / 100;
      const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim();
      const group: ThreadGroup = Number(tid) === pid ? "js"
        : comm.startsWith("Bun Pool") ? "pool"
        : RUNTIME_THREADS.test(comm) || comm === "bun" ? "runtime"
        : "engine";
      out[group] += seconds;
    } catch {
      // the thread exited meanwhile
    }
  }
  return out;
}

/** Cores used per thread group between two readings `seconds` apart: (after − before) ÷ seconds. */
export function threadCores(before: Record<ThreadGroup, number>, after: Record<ThreadGroup, number>, seconds: number): Record<ThreadGroup, number> {
  const cores = (g: ThreadGroup) => (after[g] - before[g]) / seconds;
  return { js: cores("js"), engine: cores("engine"), pool: cores("pool"), runtime: cores("runtime") };
}

/** A running child with its log file. */
export class Child {
  readonly exited: Promise<number | null>;
  constructor(readonly name: string, readonly proc: Subprocess, readonly logFile: string) {
    live.add(proc);
    this.exited = proc.exited.then((code) => {
      live.delete(proc);
      return code;
    });
  }
  get pid(): number {
    return this.proc.pid;
  }
  stats(): ProcStats {
    return procStats(this.proc.pid);
  }
  log(tail = 4000): string {
    try {
      const text = readFileSync(this.logFile, "utf8");
      return text.slice(-tail);
    } catch {
      return "";
    }
  }
  /** Sends `signal`, waits up to `timeoutMs`, then SIGKILLs. Resolves with the exit code and how long it took. */
  async stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 30_000): Promise<{ code: number | null; ms: number; killed: boolean }> {
    const started = performance.now();
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return { code: this.proc.exitCode, ms: 0, killed: false };
    this.proc.kill(signal);
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      this.proc.kill("SIGKILL");
    }, timeoutMs);
    const code = await this.exited;
    clearTimeout(timer);
    return { code, ms: performance.now() - started, killed };
  }
}

export function spawnChild(name: string, cmd: string[], opts: { env?: Record<string, string>; logFile: string; cwd?: string }): Child {
  mkdirSync(resolve(opts.logFile, ".."), { recursive: true });
  const fd = openSync(opts.logFile, "a");
  const full = SETPRIV ? [SETPRIV, "--pdeathsig", "SIGKILL", ...cmd] : cmd;
  const proc = spawn(full, { cwd: opts.cwd ?? REPO, env: baseEnv(opts.env ?? {}), stdin: "ignore", stdout: fd, stderr: fd });
  closeSync(fd);
  return new Child(name, proc, opts.logFile);
}

async function waitHttp(url: string, child: Child, timeoutMs: number, ok = (r: Response) => r.status === 200): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void child.exited.then(() => (exited = true));
  while (Date.now() < deadline) {
    if (exited) throw new Error(`${child.name} exited before it was ready:\n${child.log()}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (ok(res)) return;
    } catch {}
    await Bun.sleep(50);
  }
  await child.stop("SIGKILL");
  throw new Error(`${child.name} did not answer ${url} within ${timeoutMs} ms:\n${child.log()}`);
}

/** B0 or B1 on a free port, with the runtime flags and environment the service runs with (like for like). */
export async function startBaseline(kind: "b0" | "b1", logDir: string): Promise<Child & { url: string }> {
  const port = await freePort();
  const child = spawnChild(kind.toUpperCase(), [BUN, ...BUN_FLAGS, join(REPO, "bench", "baselines", `${kind}.ts`), String(port)], {
    env: { ...RUNTIME_ENV, NODE_ENV: "production" },
    logFile: join(logDir, `${kind}.log`),
  });
  const url = `http://127.0.0.1:${port}`;
  // B0/B1 answer 204 to anything; a GET with no body is fine for B0, B1 needs a JSON body.
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const res = await fetch(url + "/ready", { method: "POST", body: "{}", headers: { "Content-Type": "application/json" } });
      if (res.status === 204) break;
    } catch {}
    if (Date.now() > deadline) throw new Error(`${kind} did not start:\n${child.log()}`);
    await Bun.sleep(30);
  }
  return Object.assign(child, { url });
}

export interface ServiceOptions {
  dataDir: string;
  logDir: string;
  /** Extra environment (CLICKHOUSE_URL, VALKEY_URL, ...). */
  env?: Record<string, string>;
  /** Write a CPU profile into this directory on exit (Bun's --cpu-prof). */
  cpuProfDir?: string;
  /** Open Bun's inspector on a loopback port so `gc()` can force a full collection (memory part only). */
  inspect?: boolean;
  label?: string;
}

/** The service, started as production runs it: NODE_ENV=production, durable spool (fsync) on. */
export class Service {
  private constructor(readonly child: Child, readonly url: string, readonly dataDir: string, readonly startMs: number, readonly inspectorUrl?: string) {}

  static async start(opts: ServiceOptions): Promise<Service> {
    const port = await freePort();
    mkdirSync(opts.dataDir, { recursive: true });
    const cmd: string[] = [BUN, ...BUN_FLAGS];
    if (opts.cpuProfDir) cmd.push("--cpu-prof", `--cpu-prof-dir=${opts.cpuProfDir}`);
    const inspectorUrl = opts.inspect ? `ws://127.0.0.1:${await freePort()}/bench-${crypto.randomUUID().slice(0, 8)}` : undefined;
    if (inspectorUrl) cmd.push(`--inspect=${inspectorUrl.slice("ws://".length)}`);
    cmd.push(join(srcRoot, "src", "main.ts"));
    const started = performance.now();
    const child = spawnChild(opts.label ?? "service", cmd, {
      env: {
        ...RUNTIME_ENV,
        NODE_ENV: "production",
        PORT: String(port),
        HOST: "127.0.0.1",
        DATA_DIR: opts.dataDir,
        ANALYTICS_ROOT_TOKEN: ROOT_TOKEN,
        ACK_MODE: "spool",
        SPOOL_FSYNC: "true",
        ...opts.env,
      },
      logFile: join(opts.logDir, `${opts.label ?? "service"}.log`),
      cwd: srcRoot,
    });
    const url = `http://127.0.0.1:${port}`;
    await waitHttp(`${url}/readyz`, child, 90_000);
    return new Service(child, url, opts.dataDir, performance.now() - started, inspectorUrl);
  }

  /**
   * Forces a full garbage collection in the service through Bun's inspector (WebKit protocol
   * `Heap.gc`), so RSS read afterwards reflects what is retained, not garbage not yet collected.
   */
  async gc(): Promise<void> {
    if (!this.inspectorUrl) throw new Error("gc(): start the service with { inspect: true }");
    const ws = new WebSocket(this.inspectorUrl);
    await new Promise<void>((res, rej) => {
      ws.onopen = () => res();
      ws.onerror = () => rej(new Error(`cannot reach the inspector at ${this.inspectorUrl}`));
    });
    await new Promise<void>((res, rej) => {
      const timer = setTimeout(() => rej(new Error("Heap.gc timed out")), 30_000);
      ws.onmessage = (m) => {
        if ((JSON.parse(String(m.data)) as { id?: number }).id === 2) {
          clearTimeout(timer);
          res();
        }
      };
      ws.send(JSON.stringify({ id: 1, method: "Heap.enable" }));
      ws.send(JSON.stringify({ id: 2, method: "Heap.gc" }));
    });
    ws.close();
  }

  /** A secret key for `serviceId`, made through POST /v1/keys with the root token. */
  async createSecretKey(serviceId: string): Promise<string> {
    const res = await fetch(`${this.url}/v1/keys`, {
      method: "POST",
      headers: { Authorization: `Bearer ${ROOT_TOKEN}`, "Content-Type": "application/json" },
      body: JSON.stringify({ type: "secret", service_id: serviceId, name: `bench ${serviceId}` }),
    });
    if (res.status !== 201) throw new Error(`POST /v1/keys: ${res.status} ${await res.text()}`);
    return ((await res.json()) as { key: string }).key;
  }

  /** Bytes of records in the spool on disk (0 once everything went to ClickHouse). */
  spoolBytes(): number {
    const dir = join(this.dataDir, "spool");
    if (!existsSync(dir)) return 0;
    let total = 0;
    for (const name of readdirSync(dir)) {
      if (!name.startsWith("seg-")) continue;
      try {
        total += statSync(join(dir, name)).size;
      } catch {} // removed meanwhile
    }
    return total;
  }

  /** Waits until the spool is empty; resolves with how long that took (ms), or NaN on timeout. */
  async waitDrained(timeoutMs = 60_000): Promise<number> {
    const started = performance.now();
    while (performance.now() - started < timeoutMs) {
      if (this.spoolBytes() === 0) return performance.now() - started;
      await Bun.sleep(20);
    }
    return NaN;
  }

  /**
   * Waits until the service is quiet after a load: its log stopped growing (refusals and errors
   * are logged per request; accepted ingest requests only at debug) and the spool has been empty
   * at two polls in a row, so a request still in flight when the generator stopped has had time
   * to reach the spool (and leave it again). Polls the file system only: a GET /metrics costs the service
   * real time (it walks the heap). Resolves with how long that took (ms), or NaN on timeout.
   */
  async waitQuiescent(timeoutMs = 90_000, pollMs = 200): Promise<number> {
    const started = performance.now();
    let lastLog = -1;
    let emptyPolls = 0;
    while (performance.now() - started < timeoutMs) {
      const logBytes = statSync(this.child.logFile).size;
      emptyPolls = this.spoolBytes() === 0 ? emptyPolls + 1 : 0;
      if (logBytes === lastLog && emptyPolls >= 2) return performance.now() - started;
      lastLog = logBytes;
      await Bun.sleep(pollMs);
    }
    return NaN;
  }

  async metrics(): Promise<string> {
    try {
      return await (await fetch(`${this.url}/metrics`)).text();
    } catch {
      return "";
    }
  }

  stats(): ProcStats {
    return this.child.stats();
  }

  /** SIGTERM: stop accepting, drain the spool into ClickHouse, exit. */
  stop(signal: NodeJS.Signals = "SIGTERM") {
    return this.child.stop(signal, 60_000);
  }
}

/** `npm run clickhouse` (src/storage/embedded-server.ts): the embedded engine over HTTP. */
export class ClickHouseServer {
  child: Child | undefined;
  constructor(readonly port: number, readonly dataDir: string, readonly logDir: string) {}
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  static async start(dataDir: string, logDir: string): Promise<ClickHouseServer> {
    const s = new ClickHouseServer(await freePort(), dataDir, logDir);
    await s.start();
    return s;
  }
  async start(): Promise<void> {
    // The same command `npm run clickhouse` runs, without npm's wrapper processes in between.
    this.child = spawnChild("clickhouse", [BUN, join(srcRoot, "src", "storage", "embedded-server.ts"), "--port", String(this.port), "--host", "127.0.0.1", "--data", this.dataDir], {
      logFile: join(this.logDir, "clickhouse.log"),
      cwd: srcRoot,
    });
    await waitHttp(`${this.url}/ping`, this.child, 60_000);
  }
  async stop(signal: NodeJS.Signals = "SIGTERM") {
    return this.child?.stop(signal, 30_000);
  }
  stats(): ProcStats {
    return this.child ? this.child.stats() : { rssBytes: 0, hwmBytes: 0, cpuSeconds: 0 };
  }
}

/** Samples RSS of `pids` every `everyMs` until stopped; keeps the peak of each. */
export function sampleRss(pids: () => number[], everyMs = 100): { stop(): number[] } {
  const peaks: number[] = [];
  const timer = setInterval(() => {
    pids().forEach((pid, i) => {
      const rss = procStats(pid).rssBytes;
      if (rss > (peaks[i] ?? 0)) peaks[i] = rss;
    });
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      return peaks;
    },
  };
}
