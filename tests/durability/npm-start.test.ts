// The README's first command runs the service under npm (`npm start`). A harness, a terminal or a
// supervisor that stops it signals npm: SIGTERM must reach the service (it drains and exits), and
// a SIGKILL of npm, which cannot be forwarded, must not leave the service running as an orphan
// that holds the port and the data directory (README walkthrough, 2026-11-29: it did, both ways).
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
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

/** `npm start` on a free port and a fresh data directory, ready; with the pid of its bun child. */
async function npmStart(dataDir: string, port: number) {
  const npm = Bun.spawn(["npm", "start"], {
    cwd: REPO,
    env: { ...process.env, PORT: String(port), DATA_DIR: dataDir, ANALYTICS_ROOT_TOKEN: "npm-start-test-root-token-0123456789", LOG_LEVEL: "warn" },
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

test("SIGTERM to npm start reaches the service: it drains and exits", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "npm-start-"));
  dirs.push(dataDir);
  const port = await freePort();
  const { npm, bun, healthy } = await npmStart(dataDir, port);
  npm.kill("SIGTERM");
  await waitFor("the service exiting after npm's SIGTERM", 15_000, () => !alive(bun));
  expect(await healthy()).toBe(false);
  await npm.exited;
}, 60_000);

test("SIGKILL of npm start stops the service too, so the next npm start on its port and data directory comes up", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "npm-start-"));
  dirs.push(dataDir);
  const port = await freePort();
  const first = await npmStart(dataDir, port);
  first.npm.kill("SIGKILL");
  const gone = await waitFor("the orphaned service stopping", 15_000, () => !alive(first.bun));
  console.log(`[npm start] the service stopped ${gone} ms after npm was killed`);
  const second = await npmStart(dataDir, port);
  second.npm.kill("SIGTERM");
  await waitFor("the second service exiting", 15_000, () => !alive(second.bun));
}, 90_000);
