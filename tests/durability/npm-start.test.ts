// The README's first command runs the service under npm (`npm start`). A harness, a terminal or a
// supervisor that stops it signals npm: SIGTERM must reach the service (it drains and exits), and
// a SIGKILL of npm, which cannot be forwarded, must not leave the service running as an orphan
// that holds the port and the data directory (README walkthrough, 2026-11-29: it did, both ways).
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { RUNTIME_ENV } from "../../src/runtime-flags.ts";
import { freePort } from "../helpers/embedded-server.ts";

const REPO = resolve(import.meta.dir, "..", "..");
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** Whether process `pid` is still there (a zombie counts as gone). */
function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}

async function waitFor(what: string, ms: number, check: () => boolean | Promise<boolean>): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > ms) throw new Error(`${what}: not within ${ms} ms`);
    await Bun.sleep(50);
  }
  return Date.now() - started;
}

/** A fresh data directory (removed after the file) and a free port. */
async function freshPlace(): Promise<{ dataDir: string; port: number }> {
  const dataDir = mkdtempSync(join(tmpdir(), "npm-start-"));
  dirs.push(dataDir);
  return { dataDir, port: await freePort() };
}

/** `npm start` on a free port and a fresh data directory, ready; with the pid of its bun child. */
async function npmStart(dataDir: string, port: number, extraEnv: Record<string, string> = {}) {
  const { MIMALLOC_PURGE_DELAY: _, UV_THREADPOOL_SIZE: __, ...inherited } = process.env;
  const npm = Bun.spawn(["npm", "start"], {
    cwd: REPO,
    env: { ...inherited, PORT: String(port), DATA_DIR: dataDir, ANALYTICS_ROOT_TOKEN: "npm-start-test-root-token-0123456789", LOG_LEVEL: "warn", ...extraEnv },
    stdout: "pipe",
    stderr: "pipe",
  });
  const healthy = async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null))?.status === 200;
  await waitFor("the service answering /healthz", 30_000, healthy);
  const children = readFileSync(`/proc/${npm.pid}/task/${npm.pid}/children`, "utf8").trim().split(/\s+/).map(Number);
  expect(children).toHaveLength(1); // bun itself: the script execs it, no shell in between
  const bun = children[0]!;
  expect(readFileSync(`/proc/${bun}/cmdline`, "utf8")).toContain("src/main.ts");
  return { npm, bun, healthy };
}

/** The environment process `pid` started with. */
function environOf(pid: number): Map<string, string> {
  const entries = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").filter(Boolean);
  return new Map(entries.map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)] as [string, string]));
}

test("npm start runs the service with the runtime settings of src/runtime-flags.ts; an operator's own value wins", async () => {
  const cases = [
    [{}, RUNTIME_ENV],
    [
      { MIMALLOC_PURGE_DELAY: "250", UV_THREADPOOL_SIZE: "24", JE_MALLOC_CONF: "dirty_decay_ms:1000" },
      { MIMALLOC_PURGE_DELAY: "250", UV_THREADPOOL_SIZE: "24", JE_MALLOC_CONF: "dirty_decay_ms:1000" },
    ],
  ] as const;
  for (const [extra, expected] of cases) {
    const { dataDir, port } = await freshPlace();
    const { npm, bun } = await npmStart(dataDir, port, extra);
    try {
      const environ = environOf(bun);
      expect(Object.fromEntries(Object.keys(RUNTIME_ENV).map((k) => [k, environ.get(k)]))).toEqual({ ...expected });
    } finally {
      npm.kill("SIGTERM");
      await waitFor("the service exiting", 15_000, () => !alive(bun));
      await npm.exited;
    }
  }
}, 90_000);

test("SIGTERM to npm start reaches the service: it drains and exits", async () => {
  const { dataDir, port } = await freshPlace();
  const { npm, bun, healthy } = await npmStart(dataDir, port);
  npm.kill("SIGTERM");
  await waitFor("the service exiting after npm's SIGTERM", 15_000, () => !alive(bun));
  expect(await healthy()).toBe(false);
  await npm.exited;
}, 60_000);

test("SIGKILL of npm start stops the service too, so the next npm start on its port and data directory comes up", async () => {
  const { dataDir, port } = await freshPlace();
  const first = await npmStart(dataDir, port);
  first.npm.kill("SIGKILL");
  const gone = await waitFor("the orphaned service stopping", 15_000, () => !alive(first.bun));
  console.log(`[npm start] the service stopped ${gone} ms after npm was killed`);
  const second = await npmStart(dataDir, port);
  second.npm.kill("SIGTERM");
  await waitFor("the second service exiting", 15_000, () => !alive(second.bun));
}, 90_000);

test("npm start right after npm was killed under load comes up once the old service has drained", async () => {
  const { dataDir, port } = await freshPlace();
  const first = await npmStart(dataDir, port);
  const created = await fetch(`http://127.0.0.1:${port}/v1/keys`, {
    method: "POST",
    headers: { authorization: "Bearer npm-start-test-root-token-0123456789", "content-type": "application/json" },
    body: JSON.stringify({ type: "secret", service_id: "npm" }),
  });
  const key = ((await created.json()) as { key: string }).key;
  let stop = false;
  // Batches keep coming, so the old service has a spool to drain when it stops.
  const load = Promise.all(Array.from({ length: 16 }, async () => {
    while (!stop) {
      const body = JSON.stringify({ items: Array.from({ length: 100 }, (_, i) => ({ type: "event", name: "e", anonymous_id: `v${i}` })) });
      await fetch(`http://127.0.0.1:${port}/v1/ingest/batch`, { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body }).catch(() => Bun.sleep(20));
    }
  }));
  await Bun.sleep(2_000);
  first.npm.kill("SIGKILL");
  const second = Bun.spawn(["npm", "start"], {
    cwd: REPO,
    env: { ...process.env, PORT: String(port), DATA_DIR: dataDir, ANALYTICS_ROOT_TOKEN: "npm-start-test-root-token-0123456789", LOG_LEVEL: "warn" },
    stdout: "pipe",
    stderr: "pipe",
  });
  try {
    await waitFor("the old service stopping", 15_000, () => !alive(first.bun));
    await waitFor("the new service answering", 30_000, async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null))?.status === 200);
    expect(await Promise.race([second.exited.then((code) => `exited ${code}`), Bun.sleep(500).then(() => "running")])).toBe("running");
  } finally {
    stop = true;
    await load;
    second.kill("SIGTERM");
    await second.exited;
  }
}, 90_000);
