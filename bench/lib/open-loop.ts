// An open-loop (fixed-rate) HTTP load generator on raw loopback sockets, for latency at a given
// request rate without coordinated omission: request i is *scheduled* at t0 + i/rate whatever
// happened before, and its latency is measured from that scheduled time, so a stall in the server
// shows up in every request that should have gone out during it (as wrk2 does; wrk2 is not in
// Debian). A request that finds every connection busy waits in the generator's queue, and that
// wait counts. The uncorrected latency (from the actual write) and the generator's own lag
// (actual write - schedule) are reported too, so its own timer noise can be told apart.
//
//   bun bench/lib/open-loop.ts --url http://127.0.0.1:PORT/v1/ingest/event --rate 2000 \
//     --duration 10 --warmup 1 --connections 32 --key sk_... [--mode event|batch --items 100]
//
// Prints one line: `OPEN_LOOP_JSON {...}`. Loopback only; stops by itself after
// warmup + duration (+ at most 5 s for replies still in flight).
import { parseArgs } from "node:util";
import { BodyFactory } from "./bodies.ts";
import { percentileSorted } from "./stats.ts";

const { values: a } = parseArgs({
  options: {
    url: { type: "string" },
    rate: { type: "string" },
    duration: { type: "string", default: "10" },
    warmup: { type: "string", default: "1" },
    connections: { type: "string", default: "32" },
    key: { type: "string", default: "none" },
    mode: { type: "string", default: "event" },
    items: { type: "string", default: "100" },
  },
});
const url = new URL(a.url ?? "");
if (!["127.0.0.1", "localhost", "[::1]"].includes(url.hostname)) throw new Error("open-loop: loopback targets only");
const rate = Number(a.rate);
const duration = Number(a.duration);
const warmup = Number(a.warmup);
const nConn = Number(a.connections);
const items = Number(a.items);
if (!(rate > 0 && duration > 0 && nConn > 0)) throw new Error("open-loop: --rate, --duration and --connections must be positive");

const bodies = new BodyFactory(1);
const headPrefix = `POST ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\nAuthorization: Bearer ${a.key}\r\n`;
const makeRequest = () => {
  const body = a.mode === "batch" ? bodies.batch(items) : bodies.event();
  return `${headPrefix}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
};

const total = Math.round(rate * (warmup + duration));
const interval = 1000 / rate;
const measureFrom = Math.round(rate * warmup); // requests before this index are warm-up
const corrected = new Float64Array(total);
const uncorrected = new Float64Array(total);
const lag = new Float64Array(total);
const done = new Uint8Array(total);
const statuses = new Map<number, number>();
let errors = 0;
let completed = 0;

interface Conn {
  socket: any;
  busy: boolean;
  index: number;
  sentAt: number;
  out: string;
  buf: Buffer;
  dead: boolean;
}

const queue: number[] = []; // request indices due but not yet sent
let qHead = 0;
let next = 0;
let t0 = 0;
const idle: Conn[] = [];

function pump(): void {
  const now = performance.now();
  while (next < total && t0 + next * interval <= now) queue.push(next++);
  while (qHead < queue.length && idle.length > 0) {
    const conn = idle.pop()!;
    if (conn.dead) continue; // closed by the server: never reused (its request counted as an error)
    send(conn, queue[qHead++]!);
  }
  if (qHead > 4096 && qHead * 2 > queue.length) {
    queue.splice(0, qHead);
    qHead = 0;
  }
}

function send(conn: Conn, index: number): void {
  conn.busy = true;
  conn.index = index;
  conn.sentAt = performance.now();
  conn.out = makeRequest();
  flush(conn);
}

function flush(conn: Conn): void {
  while (conn.out.length > 0) {
    const n = conn.socket.write(conn.out);
    if (n <= 0) return; // wait for drain
    conn.out = conn.out.slice(n);
  }
}

function finish(conn: Conn, status: number): void {
  const now = performance.now();
  const i = conn.index;
  const scheduled = t0 + i * interval;
  corrected[i] = now - scheduled;
  uncorrected[i] = now - conn.sentAt;
  lag[i] = conn.sentAt - scheduled;
  done[i] = 1;
  completed++;
  statuses.set(status, (statuses.get(status) ?? 0) + 1);
  conn.busy = false;
  idle.push(conn);
  pump();
}

/** Parses as many complete responses as `conn.buf` holds (one at a time: no pipelining). */
function onData(conn: Conn, chunk: Buffer): void {
  conn.buf = conn.buf.length ? Buffer.concat([conn.buf, chunk]) : chunk;
  for (;;) {
    const end = conn.buf.indexOf("\r\n\r\n");
    if (end < 0) return;
    const head = conn.buf.toString("latin1", 0, end);
    const status = Number(head.slice(9, 12));
    let bodyLen = 0;
    const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (cl) bodyLen = Number(cl[1]);
    else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
      const term = conn.buf.indexOf("0\r\n\r\n", end + 4);
      if (term < 0) return;
      bodyLen = term + 5 - (end + 4);
    }
    if (conn.buf.length < end + 4 + bodyLen) return;
    conn.buf = conn.buf.subarray(end + 4 + bodyLen);
    if (!conn.busy) continue; // a stray reply; ignore
    finish(conn, status);
  }
}

const conns: Conn[] = [];
await Promise.all(
  Array.from({ length: nConn }, async () => {
    const conn: Conn = { socket: null, busy: false, index: -1, sentAt: 0, out: "", buf: Buffer.alloc(0), dead: false };
    conn.socket = await Bun.connect({
      hostname: url.hostname,
      port: Number(url.port),
      data: conn,
      socket: {
        data: (s: any, chunk: Buffer) => onData(s.data, Buffer.from(chunk)),
        drain: (s: any) => flush(s.data),
        close: (s: any) => {
          const c: Conn = s.data;
          c.dead = true;
          if (c.busy) errors++;
        },
        error: (s: any) => {
          errors++;
          s.data.dead = true;
        },
      },
    });
    conns.push(conn);
    idle.push(conn);
  }),
);

t0 = performance.now() + 5;
const lastScheduled = t0 + (total - 1) * interval;
await new Promise<void>((resolve) => {
  const tick = () => {
    pump();
    const now = performance.now();
    if (completed + errors >= total || now > lastScheduled + 5000) return resolve();
    setTimeout(tick, 1);
  };
  tick();
});
for (const c of conns) c.socket.end();

const measured = { corrected: [] as number[], uncorrected: [] as number[], lag: [] as number[] };
let missing = 0;
for (let i = measureFrom; i < total; i++) {
  if (!done[i]) {
    missing++;
    continue;
  }
  measured.corrected.push(corrected[i]!);
  measured.uncorrected.push(uncorrected[i]!);
  measured.lag.push(lag[i]!);
}
const pcts = (xs: number[]) => {
  const s = Float64Array.from(xs).sort();
  return { p50: percentileSorted(s, 50), p90: percentileSorted(s, 90), p99: percentileSorted(s, 99), p999: percentileSorted(s, 99.9), max: s.length ? s[s.length - 1]! : NaN };
};
const measuredCount = measured.corrected.length;
console.log(
  `OPEN_LOOP_JSON ${JSON.stringify({
    rate, duration, warmup, connections: nConn, scheduled: total, completed, errors, missing,
    measured: measuredCount,
    statuses: Object.fromEntries(statuses),
    achieved_rate: measuredCount / duration,
    corrected_ms: pcts(measured.corrected),
    uncorrected_ms: pcts(measured.uncorrected),
    lag_ms: pcts(measured.lag),
  })}`,
);
process.exit(0);
