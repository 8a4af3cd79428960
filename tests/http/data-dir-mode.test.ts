// The data directory holds every tenant's data, the spool and the keys' hashes: what the project
// creates there is its user's alone. The security audit found the directory 0755 and the spool's
// and the engine's files 0644, readable by every local user; its re-verification found the same
// left for `npm run migrate` and `npm run clickhouse` after the service itself was fixed.
import { expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUN_FLAGS } from "../../src/runtime-flags.ts";
import { freePort } from "../helpers/embedded-server.ts";

/** Every path below `dir` (links not followed) whose mode lets group or others in. */
function openToOthers(dir: string): { entries: number; open: string[] } {
  const names = readdirSync(dir, { recursive: true }) as string[];
  const open = names.filter((name) => {
    const st = statSync(join(dir, name), { throwIfNoEntry: false });
    return st !== undefined && (st.mode & 0o077) !== 0;
  });
  return { entries: names.length, open };
}


/** Runs `args` until its stdout shows `ready` (or it exits), checks `dir`, then stops it. */
async function check(args: string[], env: Record<string, string>, dir: string, ready: string | null, expectNames: string[], afterReady?: () => Promise<void>) {
  const proc = Bun.spawn([process.execPath, ...args], { env: { PATH: process.env.PATH ?? "", ...env }, stdout: "pipe", stderr: "pipe" });
  try {
    if (ready === null) {
      expect(await proc.exited).toBe(0);
    } else {
      const reader = proc.stdout.getReader();
      let out = "";
      while (!out.includes(ready)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`exited before ready: ${out}`);
        out += new TextDecoder().decode(value);
      }
    }
    await afterReady?.();
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const { entries, open } = openToOthers(dir);
    expect(readdirSync(dir)).toEqual(expect.arrayContaining(expectNames));
    expect(entries).toBeGreaterThan(20); // the engine's metadata and parts are among them
    expect(open).toEqual([]);
  } finally {
    proc.kill("SIGTERM");
    await proc.exited;
  }
}

/** A path under a fresh temporary directory (not created: the program under test creates it). */
async function inNewDir(run: (dir: string) => Promise<void>): Promise<void> {
  const parent = mkdtempSync(join(tmpdir(), "data-mode-"));
  try {
    await run(join(parent, "data"));
  } finally {
    rmSync(parent, { recursive: true, force: true });
  }
}

test("the service: a DATA_DIR it creates is 0700, and its files (spool, engine, root token) are not readable by others", () =>
  inNewDir(async (dir) => {
    // No ANALYTICS_ROOT_TOKEN: the generated token file is checked too.
    await check([...BUN_FLAGS, "src/main.ts"], { PORT: String(await freePort()), HOST: "127.0.0.1", DATA_DIR: dir }, dir, '"listening"', ["root-token", "spool", "clickhouse"]);
  }), 60_000);

test("npm run migrate on a new embedded DATA_DIR: 0700, nothing readable by others", () =>
  inNewDir((dir) => check(["src/storage/migrate-cli.ts"], { DATA_DIR: dir }, dir, null, ["clickhouse"])), 60_000);

test("npm run clickhouse (the embedded endpoint) on a new data directory: 0700, nothing readable by others", () =>
  inNewDir(async (dir) => {
    const port = await freePort();
    // A table with a row, written through the endpoint: the files a tenant's data lands in.
    const write = async () => {
      for (const sql of ["CREATE DATABASE IF NOT EXISTS mode_test", "CREATE TABLE mode_test.t (x String) ENGINE = MergeTree ORDER BY x", "INSERT INTO mode_test.t VALUES ('tenant data')"]) {
        const res = await fetch(`http://127.0.0.1:${port}/`, { method: "POST", body: sql });
        expect([sql, res.status, await res.text()]).toEqual([sql, 200, ""]);
      }
    };
    await check(["src/storage/embedded-server.ts", "--port", String(port), "--data", dir], {}, dir, "listening", ["clickhouse"], write);
  }), 60_000);
