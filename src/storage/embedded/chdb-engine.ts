// The embedded ClickHouse engine (libchdb through the `chdb` package), shared by one process.
//
// libchdb binds one data directory per process, and one chdb connection runs one query at a
// time while several connections on the same directory run in parallel. So the engine opens a
// small pool of connections ("lanes") and gives each request a lane to itself for its whole
// run: session state a request changes (settings, current database) is put right on the lane
// before the next request runs there, so nothing leaks from one request into another.
//
// Query parameters are handed to the engine exactly as the HTTP interface receives them (the
// `param_*` text), through chdb's native binding: chdb's JS wrapper re-escapes string values,
// which would change what `Array`/`Map` parameters mean. That wrapper also runs parameterized
// queries one at a time across all connections, for fear that parallel ones clobber each other's
// parameters; with the bundled libchdb, 25,500 parameterized queries on 4–8 lanes at once all got
// their own answers (2026-11-30), and tests/storage/conformance.test.ts checks 200 in parallel.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Session } from "chdb";

const require = createRequire(import.meta.url);

/** chdb's native addon (the functions its own `Session` calls), typed for what we use. */
interface ChdbNative {
  QueryAsyncConnection(conn: unknown, sql: string, format: string, params?: Record<string, string>): Promise<NativeResult>;
  InsertRawAsyncConnection(conn: unknown, prefix: string, data: Uint8Array, countLines: boolean): Promise<NativeInsertResult>;
  StreamQuery(conn: unknown, sql: string, format: string, params?: Record<string, string>): unknown;
  StreamFetch(handle: unknown): Promise<{ bytes: Uint8Array; numRows: number; done: boolean }>;
  StreamCancel(handle: unknown): void;
}
interface NativeResult { bytes: Uint8Array; elapsed: number; rowsRead: number; bytesRead: number }
interface NativeInsertResult { elapsed: number; rowsWritten: number; bytesWritten: number }

const chdbRoot = dirname(require.resolve("chdb"));
const native: ChdbNative = require(join(chdbRoot, "dist", "loader.js")).loadNative();

/** One request to the engine, in the terms of the ClickHouse HTTP interface. */
export interface EngineRequest {
  sql: string;
  /** Raw `param_*` values, as received (tab-separated escaping still applied). */
  params?: Record<string, string>;
  /** Settings to apply for this request only. */
  settings?: Record<string, string>;
  database?: string;
  format: string;
  /** Insert data; `sql` is then the `INSERT ... FORMAT X` prefix. */
  data?: Uint8Array;
}

/** Counters of one finished request, in the shape of `X-ClickHouse-Summary`. */
export interface EngineSummary {
  readRows: number;
  readBytes: number;
  writtenRows: number;
  writtenBytes: number;
  resultRows: number;
  resultBytes: number;
  elapsedNs: number;
}

export type EngineOutput =
  | { kind: "buffer"; bytes: Uint8Array; summary: EngineSummary }
  | { kind: "stream"; first: Uint8Array; rest: ReadableStream<Uint8Array>; summary: EngineSummary };

interface Lane {
  session: Session;
  busy: boolean;
  database: string;
  settings: Map<string, string>;
}

/** A request waiting for a free lane. */
interface Job {
  req: EngineRequest;
  stream: boolean;
  resolve: (out: EngineOutput) => void;
  reject: (err: unknown) => void;
  /** When it was queued, and when a lane took it (performance.now()). */
  queuedAt: number;
  startedAt?: number;
  /** Already reported as slow (see watchSlow): each request is reported once. */
  reported?: boolean;
}

/** A request that has waited for a lane, or run on one, longer than watchSlow's threshold. */
export interface SlowRequest {
  state: "queued" | "running";
  /** How long it has been in that state, ms. */
  ms: number;
  /** The statement's start, whitespace collapsed (no parameter values, no insert data). */
  sql: string;
  /** A streamed read keeps its lane until its reader has taken every chunk. */
  stream: boolean;
  lanesBusy: number;
  queued: number;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
/**
 * Statements that change the connection's session (`SET ...`, `USE db`). Over HTTP without a
 * session each request is a session of its own, so their effect must end with the request: the
 * lane's connection is replaced after running one.
 */
const SESSION_STATEMENT = /^(?:\s|--[^\n]*\n|\/\*[\s\S]*?\*\/)*(?:set|use)\b/i;
/**
 * Settings whose value is new on nearly every request (a flush's dedup token). On an insert they go
 * into the statement's own SETTINGS clause rather than onto the lane, which would cost a `SET`
 * round trip per insert and one more to take it off again; they cannot outlive the statement.
 */
const STATEMENT_SETTINGS = new Set(["insert_deduplication_token"]);
/** The trailing `FORMAT <name>` of an insert prefix, where a SETTINGS clause goes in front of. */
const INSERT_FORMAT_TAIL = /\s+FORMAT\s+[A-Za-z0-9_]+\s*$/i;
const HAS_SETTINGS_CLAUSE = /\bSETTINGS\b/i;
/** How long a request may wait for a lane, or hold one, before the service and `npm run clickhouse` log it (watchSlow). */
export const SLOW_REQUEST_MS = 10_000;
/** A stream nobody reads for this long is cancelled, so its lane cannot stay blocked. */
const STREAM_IDLE_MS = 60_000;
/**
 * What libchdb answers to every request, for good, once a fatal signal (SIGSEGV, SIGBUS, …) hit
 * one of its own threads: its signal handler keeps the process alive and marks the engine as
 * shutting down (code 236, ABORTED). Nothing in the process brings it back; only a new process does.
 */
const FAILED_ENGINE = /Code: 236\b[\s\S]*shutting down due to a fatal error/;

/** True for the error a failed engine answers every request with (see FAILED_ENGINE). */
export function isEngineFailure(err: unknown): boolean {
  return FAILED_ENGINE.test(err instanceof Error ? err.message : String(err));
}

export class ChdbEngine {
  readonly #lanes: Lane[];
  /** Requests waiting for a lane, oldest first: the next free lane takes the head. */
  readonly #queue: Job[] = [];
  /** Requests running on a lane (streams included, until they end), each with its run. */
  readonly #running = new Map<Job, Promise<void>>();
  #closed = false;
  /** The error every request got since the engine failed (isEngineFailure), and who is told. */
  #failure: Error | undefined;
  readonly #failureListeners: ((message: string) => void)[] = [];

  private constructor(readonly dataDir: string, laneCount: number) {
    this.#lanes = Array.from({ length: Math.max(1, laneCount) }, () => ({
      session: new Session(dataDir),
      busy: false,
      database: "default",
      settings: new Map(),
    }));
  }

  /** How many requests can run at once (the number of connections). */
  get lanes(): number {
    return this.#lanes.length;
  }

  /** Opens the engine on `dataDir` with `lanes` parallel connections. */
  static open(dataDir: string, lanes = 4): ChdbEngine {
    return new ChdbEngine(dataDir, lanes);
  }

  /**
   * Runs one request on the next free lane. Requests wait in one queue, so a long request holds
   * up nothing while another lane is free. Results of reads may come back as a stream, which
   * keeps its lane until it ends or is cancelled.
   */
  run(req: EngineRequest, opts: { stream?: boolean } = {}): Promise<EngineOutput> {
    if (this.#closed) return Promise.reject(new Error("Code: 999. DB::Exception: embedded engine is closed. (ENGINE_CLOSED)"));
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise<EngineOutput>((resolve, reject) => {
      this.#queue.push({ req, stream: opts.stream ?? false, resolve, reject, queuedAt: performance.now() });
      this.#dispatch();
    });
  }

  /**
   * Reports every request that waits for a lane, or holds one, longer than `thresholdMs`, once,
   * while it is still waiting or running: a stuck request (a stream nobody reads, a statement that
   * never returns) shows up in the log instead of only as a client's timeout. Returns a stop function.
   * With several watchers on one engine (tests compose several services on one), a request is
   * reported to whichever sees it first.
   */
  watchSlow(thresholdMs: number, report: (slow: SlowRequest) => void): () => void {
    const check = () => {
      const now = performance.now();
      const lanesBusy = this.#running.size;
      const queued = this.#queue.length;
      for (const job of [...this.#queue, ...this.#running.keys()]) {
        const since = job.startedAt ?? job.queuedAt;
        if (job.reported || now - since < thresholdMs) continue;
        job.reported = true;
        const sql = job.req.sql.replace(/\s+/g, " ").trim().slice(0, 160);
        report({ state: job.startedAt === undefined ? "queued" : "running", ms: Math.round(now - since), sql, stream: job.stream, lanesBusy, queued });
      }
    };
    const timer = setInterval(check, Math.max(10, Math.min(1000, Math.floor(thresholdMs / 4))));
    timer.unref?.();
    return () => clearInterval(timer);
  }

  /**
   * Tells `listener`, once, when the engine has failed for good (isEngineFailure: a request got
   * that answer); at once if it already has. Every later request is refused with the same error.
   */
  onFailure(listener: (message: string) => void): void {
    if (this.#failure) queueMicrotask(() => listener(this.#failure!.message));
    else this.#failureListeners.push(listener);
  }

  /** Notes `err` when it says the engine has failed, and tells the listeners the first time. */
  #noteFailure(err: unknown): void {
    if (this.#failure || !isEngineFailure(err)) return;
    this.#failure = err instanceof Error ? err : new Error(String(err));
    for (const listener of this.#failureListeners.splice(0)) listener(this.#failure.message);
  }

  /** Closes every lane after the requests already queued or running. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    while (this.#running.size > 0) await Promise.all([...this.#running.values()]);
    for (const l of this.#lanes) l.session.close();
  }

  /** Hands queued requests to idle lanes. */
  #dispatch(): void {
    for (const lane of this.#lanes) {
      if (this.#queue.length === 0) return;
      if (lane.busy) continue;
      const job = this.#queue.shift()!;
      lane.busy = true;
      job.startedAt = performance.now();
      job.reported = false; // reported while queued: may be reported again if it then runs long
      const running: Promise<void> = this.#runOnLane(lane, job).finally(() => {
        this.#running.delete(job);
        lane.busy = false;
        this.#dispatch();
      });
      this.#running.set(job, running);
    }
  }

  /** Runs `job` on `lane`; settles when the lane is free again (a stream frees it when it ends). */
  async #runOnLane(lane: Lane, job: Job): Promise<void> {
    let release!: () => void;
    const ended = new Promise<void>((r) => (release = r));
    try {
      const req = statementSettings(job.req);
      await this.#prepareLane(lane, req);
      const out = job.stream ? await this.#stream(lane, req, release) : await this.#buffered(lane, req);
      job.resolve(out);
      if (out.kind === "stream") await ended;
    } catch (err) {
      this.#noteFailure(err);
      job.reject(err);
    } finally {
      if (SESSION_STATEMENT.test(job.req.sql)) this.#renewSession(lane);
    }
  }

  /** Replaces the lane's connection with a fresh one (default settings, database `default`). */
  #renewSession(lane: Lane): void {
    const old = lane.session;
    try {
      lane.session = new Session(this.dataDir);
    } catch {
      // Keep the old connection; at least its database is put right by the next request.
      lane.database = "";
      return;
    }
    lane.database = "default";
    lane.settings = new Map();
    old.close();
  }

  /** Puts the lane's database and settings where this request wants them. */
  async #prepareLane(lane: Lane, req: EngineRequest): Promise<void> {
    const conn = lane.session.connection;
    const database = req.database || "default";
    if (database !== lane.database) {
      if (!IDENT.test(database)) throw new Error(`Code: 81. DB::Exception: Database ${database} does not exist. (UNKNOWN_DATABASE)`);
      await native.QueryAsyncConnection(conn, `USE \`${database}\``, "TSV");
      lane.database = database;
    }
    const wanted = req.settings ?? {};
    const changes: string[] = [];
    for (const name of lane.settings.keys()) {
      if (!(name in wanted)) changes.push(`${name} = DEFAULT`);
    }
    for (const [name, value] of Object.entries(wanted)) {
      if (lane.settings.get(name) === value) continue;
      if (!IDENT.test(name)) throw new Error(`Code: 115. DB::Exception: Unknown setting '${name}'. (UNKNOWN_SETTING)`);
      changes.push(`${name} = ${sqlLiteral(value)}`);
    }
    if (changes.length === 0) return;
    // Forget the lane's settings first: if the SET fails half-way, the next request puts each of
    // them right (each is marked with a value no request sends, so the next request SETs it again,
    // or back to its DEFAULT when it does not want it).
    const previous = new Map(lane.settings);
    lane.settings = new Map([...previous, ...Object.keys(wanted).map((k) => [k, "\u0000unknown"] as [string, string])]);
    await native.QueryAsyncConnection(conn, `SET ${changes.join(", ")}`, "TSV");
    lane.settings = new Map(Object.entries(wanted));
  }

  async #buffered(lane: Lane, req: EngineRequest): Promise<EngineOutput> {
    const conn = lane.session.connection;
    // Insert data goes to the engine as bytes (InsertRaw); that call takes no query parameters, so
    // an insert that has some (an `INSERT … SELECT … {p:T}` with a body, rare) is sent as text.
    if (req.data && !nonEmpty(req.params)) {
      const r = await native.InsertRawAsyncConnection(conn, req.sql, req.data, false);
      return { kind: "buffer", bytes: new Uint8Array(0), summary: writeSummary(r, req.data.byteLength) };
    }
    const sql = req.data ? `${req.sql}\n${new TextDecoder().decode(req.data)}` : req.sql;
    const r = await native.QueryAsyncConnection(conn, sql, req.format, nonEmpty(req.params));
    const bytes = new Uint8Array(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength);
    return {
      kind: "buffer",
      bytes,
      summary: {
        readRows: r.rowsRead, readBytes: r.bytesRead, writtenRows: 0, writtenBytes: 0,
        resultRows: 0, resultBytes: bytes.byteLength, elapsedNs: Math.round(r.elapsed * 1e9),
      },
    };
  }

  /** Starts a streamed read; the first chunk is fetched here so errors surface as a status. */
  async #stream(lane: Lane, req: EngineRequest, release: () => void): Promise<EngineOutput> {
    const started = performance.now();
    const handle = native.StreamQuery(lane.session.connection, req.sql, req.format, nonEmpty(req.params));
    let first: { bytes: Uint8Array; numRows: number; done: boolean };
    try {
      first = await native.StreamFetch(handle);
    } catch (err) {
      native.StreamCancel(handle);
      throw err;
    }
    const summary: EngineSummary = {
      readRows: first.numRows, readBytes: first.bytes.byteLength, writtenRows: 0, writtenBytes: 0,
      resultRows: first.numRows, resultBytes: first.bytes.byteLength, elapsedNs: 0,
    };
    const firstBytes = new Uint8Array(first.bytes.buffer, first.bytes.byteOffset, first.bytes.byteLength);
    if (first.done) {
      native.StreamCancel(handle);
      release();
      summary.elapsedNs = Math.round((performance.now() - started) * 1e6);
      return { kind: "buffer", bytes: firstBytes, summary };
    }
    let finished = false;
    let idle: ReturnType<typeof setTimeout> | undefined;
    const noteFailure = (err: unknown) => this.#noteFailure(err);
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(idle);
      native.StreamCancel(handle);
      release();
    };
    const armIdle = () => {
      clearTimeout(idle);
      idle = setTimeout(finish, STREAM_IDLE_MS);
    };
    armIdle();
    const rest = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (finished) return controller.close();
        armIdle();
        try {
          const chunk = await native.StreamFetch(handle);
          if (chunk.done) {
            finish();
            controller.close();
          } else {
            controller.enqueue(new Uint8Array(chunk.bytes.buffer, chunk.bytes.byteOffset, chunk.bytes.byteLength));
          }
        } catch (err) {
          finish();
          noteFailure(err);
          controller.error(err);
        }
      },
      cancel: finish,
    }, { highWaterMark: 0 });
    return { kind: "stream", first: firstBytes, rest, summary };
  }
}

/**
 * Moves STATEMENT_SETTINGS of an insert with data into its SQL (`INSERT INTO t SETTINGS … FORMAT
 * X`); any other request, or a prefix that already has a SETTINGS clause, is left as it is.
 */
function statementSettings(req: EngineRequest): EngineRequest {
  if (!req.data || !req.settings) return req;
  const names = Object.keys(req.settings).filter((n) => STATEMENT_SETTINGS.has(n));
  if (names.length === 0) return req;
  const tail = INSERT_FORMAT_TAIL.exec(req.sql);
  if (!tail || HAS_SETTINGS_CLAUSE.test(req.sql)) return req;
  const settings = { ...req.settings };
  const clause = names.map((n) => {
    const value = settings[n]!;
    delete settings[n];
    return `${n} = ${sqlLiteral(value)}`;
  });
  const sql = `${req.sql.slice(0, tail.index)} SETTINGS ${clause.join(", ")}${req.sql.slice(tail.index)}`;
  return { ...req, sql, settings };
}

function writeSummary(r: NativeInsertResult, sent: number): EngineSummary {
  return {
    readRows: r.rowsWritten, readBytes: sent, writtenRows: r.rowsWritten, writtenBytes: r.bytesWritten,
    resultRows: 0, resultBytes: 0, elapsedNs: Math.round(r.elapsed * 1e9),
  };
}

function nonEmpty(params: Record<string, string> | undefined): Record<string, string> | undefined {
  return params && Object.keys(params).length > 0 ? params : undefined;
}

/** A setting value as a SQL literal: numbers stay numbers, everything else is a quoted string. */
function sqlLiteral(value: string): string {
  if (/^-?\d+(\.\d+)?$/.test(value)) return value;
  return `'${value.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}
