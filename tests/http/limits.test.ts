// The service as `npm start` runs it (src/runtime-flags.ts, src/main.ts): a request line or headers
// over Bun's default 16 KiB, and bodies of any size, reach the app, so they get the contract's
// 400 / 413 with X-Request-Id and an error body instead of Bun's bare 431 / 413. A wrong method on
// a route is a 405 with Allow.
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { BUN_FLAGS, RUNTIME_ENV, startScriptEnv } from "../../src/runtime-flags.ts";
import { PROCESS_ROOT_TOKEN, useSinkFixture } from "../helpers/service-process.ts";

const sink = useSinkFixture();

test("a 20 KB query value is the app's 400 invalid_query, with X-Request-Id; past 64 KiB it is Bun's 431", async () => {
  const s = await sink.startService();
  const admin = await s.createKey({ type: "admin", services: ["*"] });
  const long = await s.fetch(`/v1/sessions?service_id=shop&browser=${"x".repeat(20_000)}`, { headers: { Authorization: `Bearer ${admin}` } });
  expect(long.status).toBe(400);
  const body = (await long.json()) as { error: { code: string; issues: Array<{ path: string }> }; request_id: string };
  expect(body.error.code).toBe("invalid_query");
  expect(body.error.issues.map((i) => i.path)).toEqual(["browser"]);
  expect(long.headers.get("x-request-id")).toBe(body.request_id);
  const huge = await s.fetch(`/v1/sessions?service_id=shop&country=${"x".repeat(70_000)}`, { headers: { Authorization: `Bearer ${admin}` } });
  expect(huge.status).toBe(431);
}, 60_000);

test("a body of several MiB gets the app's 413 payload_too_large with X-Request-Id, on ingest and key routes", async () => {
  const s = await sink.startService();
  const secret = await s.createKey({ type: "secret", service_id: "shop" });
  const body = JSON.stringify({ items: [{ type: "event", name: "x", pad: "y".repeat(5 * 1024 * 1024) }] });
  for (const [path, key] of [["/v1/ingest/batch", secret], ["/v1/ingest/event", secret], ["/v1/keys", PROCESS_ROOT_TOKEN]] as const) {
    const res = await s.fetch(path, { method: "POST", headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json", "X-Request-Id": "big-body-1" }, body });
    expect([path, res.status]).toEqual([path, 413]);
    expect(res.headers.get("x-request-id")).toBe("big-body-1");
    expect(((await res.json()) as { error: { code: string }; request_id: string })).toMatchObject({ error: { code: "payload_too_large" }, request_id: "big-body-1" });
  }
  // A declared length past any size (4 GiB): the app's 413 too, from Content-Length alone.
  const raw = await rawRequest(s.port, `POST /v1/ingest/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${secret}\r\nContent-Type: application/json\r\nContent-Length: 4294967296\r\nX-Request-Id: huge-1\r\n\r\n{"items":[`);
  expect(raw).toStartWith("HTTP/1.1 413");
  expect(raw.toLowerCase()).toContain("x-request-id: huge-1");
  expect(raw).toContain('"code":"payload_too_large"');
  // The connection and the service are fine afterwards.
  expect((await s.fetch("/healthz")).status).toBe(200);
}, 60_000);

test("a wrong method on a route is 405 method_not_allowed with Allow; an unknown path stays 404", async () => {
  const s = await sink.startService();
  const cases: Array<[string, string, string]> = [
    // OPTIONS answers the CORS preflight of the ingest routes.
    ["GET", "/v1/ingest/event", "POST, OPTIONS"],
    ["DELETE", "/v1/ingest/batch", "POST, OPTIONS"],
    ["POST", "/v1/sessions", "GET, HEAD"],
    ["PUT", "/v1/keys", "POST, GET, HEAD"],
    ["POST", "/v1/funnels/checkout", "GET, HEAD"],
    ["GET", "/v1/keys/key_123", "DELETE"],
  ];
  for (const [method, path, allow] of cases) {
    const res = await s.fetch(path, { method, headers: { "X-Request-Id": "m-1" } });
    expect([method, path, res.status]).toEqual([method, path, 405]);
    expect(res.headers.get("allow")!.split(", ").sort()).toEqual(allow.split(", ").sort());
    expect(((await res.json()) as { error: { code: string }; request_id: string })).toMatchObject({ error: { code: "method_not_allowed" }, request_id: "m-1" });
  }
  // Whatever key it carries: an admin key on an ingest route got the key check's 403 first.
  const admin = await s.createKey({ type: "admin", services: ["shop"] });
  const withKey = await s.fetch("/v1/ingest/event", { method: "GET", headers: { Authorization: `Bearer ${admin}` } });
  expect([withKey.status, ((await withKey.json()) as { error: { code: string } }).error.code]).toEqual([405, "method_not_allowed"]);
  for (const path of ["/v1/nothing", "/v1/sessions/", "/v1/funnels/a/b"]) {
    const res = await s.fetch(path);
    expect([path, res.status]).toEqual([path, 404]);
  }
  // A mistyped ingest path is no route: 404, with or without a key (the input audit got a 405
  // "use POST or OPTIONS" for POST /v1/ingest/events from the ingest routes' guard).
  const secret = await s.createKey({ type: "secret", service_id: "shop" });
  for (const path of ["/v1/ingest/events", "/v1/ingest/event/", "/v1/ingest/Event", "/v1/ingest/pageviews"]) {
    for (const headers of [{}, { Authorization: `Bearer ${secret}` }] as Record<string, string>[]) {
      const res = await s.fetch(path, { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body: '{"name":"x"}' });
      expect([path, res.status, ((await res.json()) as { error: { code: string } }).error.code]).toEqual([path, 404, "not_found"]);
    }
  }
}, 60_000);

test("no Host header (HTTP/1.0) is served; a Host naming no host is 400 invalid_request, stores nothing, and never a 500", async () => {
  // Bun gives such requests a URL that is only the path; routing and `new URL` failed on it (500s).
  const s = await sink.startService();
  const secret = await s.createKey({ type: "secret", service_id: "hosts" });
  const event = (name: string) => JSON.stringify({ name });
  const post = (name: string, host: string, version = "1.1") =>
    `POST /v1/ingest/event HTTP/${version}\r\n${host}Authorization: Bearer ${secret}\r\nContent-Type: application/json\r\nContent-Length: ${event(name).length}\r\nX-Request-Id: rid-${name}\r\nConnection: close\r\n\r\n${event(name)}`;
  // The first four Bun gives a path-only URL; the rest an absolute one no URL parser takes (the
  // re-audit: 500s on 404 and 405 answers, whose handler parsed the URL).
  for (const host of ["a b", "x/y", "a@b", "a<b", "a:99999", "[::1", "999.1.1.1", "a%20b"]) {
    for (const [method, path] of [["GET", "/healthz"], ["GET", "/v1/sessions?service_id=hosts"], ["GET", "/nothing"], ["PUT", "/healthz"]]) {
      const raw = await rawRequest(s.port, `${method} ${path} HTTP/1.1\r\nHost: ${host}\r\nX-Request-Id: rid-host\r\nConnection: close\r\n\r\n`);
      expect([host, method, path, raw.slice(0, 12)]).toEqual([host, method, path, "HTTP/1.1 400"]);
      expect(raw).toContain('"code":"invalid_request"');
      expect(raw).toContain('"request_id":"rid-host"');
      expect(raw.toLowerCase()).toContain("x-request-id: rid-host");
    }
  }
  expect(await rawRequest(s.port, post("refused", "Host: x/y\r\n"))).toStartWith("HTTP/1.1 400");
  // Without a Host (HTTP/1.0 may leave it out) or with an empty one, the request is served (by the
  // app: its X-Request-Id). /readyz answers the readiness of the moment: on a loaded CI machine it
  // said 503 once between two requests (its ClickHouse ping has 2 s), which is served too.
  for (const [path, statuses] of [["/healthz", [200]], ["/readyz", [200, 503]], ["/nothing", [404]]] as const) {
    for (const request of [`GET ${path} HTTP/1.0\r\n\r\n`, `GET ${path} HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n`]) {
      const raw = await rawRequest(s.port, request);
      if (raw.startsWith("HTTP/1.1 503")) console.log(`[limits] ${path} answered 503: ${raw.slice(raw.indexOf("\r\n\r\n") + 4, 600)}`);
      expect(statuses.map((n) => `HTTP/1.1 ${n}`)).toContain(raw.slice(0, 12));
      expect(raw.toLowerCase()).toContain("\r\nx-request-id: ");
    }
  }
  // (HTTP/1.1 without any Host is Bun's own bare 400, as RFC 9112 asks.)
  const accepted = await rawRequest(s.port, post("no-host", "", "1.0"));
  expect(accepted).toStartWith("HTTP/1.1 202");
  expect(accepted).toContain('"accepted":1');
  // The accepted event becomes readable; the refused one, sent first, never does.
  let names: string[] = [];
  for (let i = 0; i < 100 && !names.includes("no-host"); i++) {
    await Bun.sleep(100);
    const r = await sink.client.query({ query: "SELECT name FROM events WHERE service_id = 'hosts' ORDER BY name", format: "JSONEachRow" });
    names = ((await r.json()) as Array<{ name: string }>).map((x) => x.name);
  }
  expect(names).toEqual(["no-host"]);
  expect(s.logs()).not.toContain("Invalid URL");
}, 60_000);

test("package.json's start and the Dockerfile run bun with the same flags and environment as the test and bench helpers", () => {
  const start = (JSON.parse(readFileSync("package.json", "utf8")) as { scripts: { start: string } }).scripts.start;
  // `exec`: no shell between npm and bun to swallow npm's SIGTERM (tests/durability/npm-start.test.ts).
  expect(start).toBe([startScriptEnv(), "exec", "bun", ...BUN_FLAGS, "src/main.ts"].join(" "));
  expect(startScriptEnv()).toBe("MIMALLOC_PURGE_DELAY=${MIMALLOC_PURGE_DELAY:--1} UV_THREADPOOL_SIZE=${UV_THREADPOOL_SIZE:-16} JE_MALLOC_CONF=${JE_MALLOC_CONF:-dirty_decay_ms:60000,muzzy_decay_ms:60000}");
  const dockerfile = readFileSync("Dockerfile", "utf8");
  const cmd = dockerfile.split("\n").filter((l) => l.startsWith("CMD ")).at(-1)!;
  expect(JSON.parse(cmd.slice(4))).toEqual(["bun", ...BUN_FLAGS, "src/main.ts"]);
  // The runtime stage's ENV (continued lines joined) sets each variable to the same value.
  const env = dockerfile.replace(/\\\n\s*/g, " ").split("\n").filter((l) => l.startsWith("ENV ")).at(-1)!;
  for (const [k, v] of Object.entries(RUNTIME_ENV)) expect(env.split(/\s+/)).toContain(`${k}=${v}`);
});

/** Sends `text` on a fresh TCP connection and returns what comes back within 5 s (or until closed). */
async function rawRequest(port: number, text: string): Promise<string> {
  let received = "";
  let done!: () => void;
  const closed = new Promise<void>((resolve) => (done = resolve));
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_, chunk) {
        received += new TextDecoder().decode(chunk);
        if (received.includes("\r\n\r\n") && /"request_id"/.test(received)) done();
      },
      close() {
        done();
      },
    },
  });
  socket.write(text);
  await Promise.race([closed, Bun.sleep(5_000)]);
  socket.end();
  return received;
}
