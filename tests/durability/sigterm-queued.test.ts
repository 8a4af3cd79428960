// SIGTERM while requests already written by their clients still wait to be read (the event loop
// busy with earlier ones): each gets its answer, none a reset connection. Found by a black-box
// kill audit (2026-11-29): 10 requests written 6–71 ms before the signal, on keep-alive
// connections, were closed unanswered ~1 ms after "shutting down" (Bun's server.stop() closes the
// connections it has no request from yet), so a client that does not retry (sendBeacon) lost them.
import { expect, test } from "bun:test";
import { connect, type Socket } from "node:net";
import { useSinkFixture } from "../helpers/service-process.ts";

const sink = useSinkFixture();

/** One keep-alive connection that writes raw HTTP/1.1 requests and counts complete answers. */
class RawConnection {
  private buffer = "";
  answers: number[] = [];
  closed = false;
  private constructor(private readonly socket: Socket) {
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => {
      this.buffer += chunk;
      for (;;) {
        const head = this.buffer.indexOf("\r\n\r\n");
        if (head < 0) return;
        const length = Number(/content-length:\s*(\d+)/i.exec(this.buffer.slice(0, head))?.[1] ?? 0);
        if (this.buffer.length < head + 4 + length) return;
        this.answers.push(Number(this.buffer.slice(9, 12)));
        this.buffer = this.buffer.slice(head + 4 + length);
      }
    });
    socket.on("close", () => (this.closed = true));
    socket.on("error", () => {});
  }
  static open(port: number): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const s = connect(port, "127.0.0.1", () => resolve(new RawConnection(s)));
      s.once("error", reject);
    });
  }
  send(key: string, body: string): void {
    this.socket.write(`POST /v1/ingest/event HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  }
  async until(n: number, ms: number): Promise<void> {
    const end = Date.now() + ms;
    while (this.answers.length < n && !this.closed && Date.now() < end) await Bun.sleep(5);
  }
  destroy(): void {
    this.socket.destroy();
  }
}

const event = (i: number) => JSON.stringify({ event_id: crypto.randomUUID(), name: "queued", url: `https://shop.example/p/${i}`, ip: `10.0.${i >> 8}.${i & 255}`, user_agent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/127.0" });

test("SIGTERM: requests written before the signal, still waiting to be read, are all answered", async () => {
  const s = await sink.startService();
  const key = await s.createKey({ type: "secret", service_id: "sigterm_queued" });
  const port = Number(new URL(s.url).port);
  const connections = await Promise.all(Array.from({ length: 64 }, () => RawConnection.open(port)));
  try {
    // Keep-alive connections the server has answered once and now sees as idle.
    connections.forEach((c, i) => c.send(key, event(i)));
    await Promise.all(connections.map((c) => c.until(1, 10_000)));
    expect(connections.map((c) => c.answers)).toEqual(connections.map(() => [202]));

    // Keep the event loop busy (large batches), write one more request on every connection, then SIGTERM.
    const items = (n: number) => JSON.stringify({ items: Array.from({ length: n }, (_, i) => ({ type: "event", name: "busy", url: `https://shop.example/b/${i}`, ip: `10.1.${i >> 8}.${i & 255}`, user_agent: "curl/8" })) });
    const busy = Array.from({ length: 12 }, () =>
      fetch(`${s.url}/v1/ingest/batch`, { method: "POST", headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" }, body: items(500) }).then((r) => r.status, () => 0),
    );
    await Bun.sleep(15);
    connections.forEach((c, i) => c.send(key, event(1000 + i)));
    await Bun.sleep(5);
    const exit = s.kill("SIGTERM");
    await Promise.all(connections.map((c) => c.until(2, 10_000)));
    expect(await exit).toEqual({ code: 0, signal: null });
    await Promise.all(busy);
    const unanswered = connections.filter((c) => c.answers.length < 2).length;
    expect({ unanswered, statuses: [...new Set(connections.flatMap((c) => c.answers))] }).toEqual({ unanswered: 0, statuses: [202] });
  } finally {
    connections.forEach((c) => c.destroy());
  }
}, 60_000);

test("SIGTERM: while the last calls are answered, /readyz says 503 shutting down and every answer closes its connection", async () => {
  const s = await sink.startService({ env: { LOG_LEVEL: "info" } });
  expect((await fetch(`${s.url}/readyz`)).status).toBe(200);
  const exit = s.kill("SIGTERM");
  const seen: Array<{ status: number; connection: string | null; reasons?: string[] }> = [];
  for (let i = 0; i < 300; i++) {
    const res = await fetch(`${s.url}/readyz`).catch(() => undefined);
    if (!res) break; // stopped listening
    const body = (await res.json()) as { reasons?: string[] };
    seen.push({ status: res.status, connection: res.headers.get("connection"), reasons: body.reasons });
    await Bun.sleep(10);
  }
  expect(await exit).toEqual({ code: 0, signal: null });
  const last = seen.filter((r) => r.status === 503);
  expect(last.length).toBeGreaterThan(0);
  expect(last[0]).toEqual({ status: 503, connection: "close", reasons: ["shutting down"] });
  // A planned stop is no warning: the readiness change is logged at info.
  const lines = s.logs().split("\n").filter((l) => l.includes('"not ready"'));
  expect(lines.length).toBe(1);
  expect(JSON.parse(lines[0]!)).toMatchObject({ level: "info", reasons: ["shutting down"] });
}, 60_000);
