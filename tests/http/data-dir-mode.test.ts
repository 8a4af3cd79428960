// The data directory holds every tenant's data, the spool and the keys' hashes: what the service
// creates there is its user's alone (the security audit found the directory 0755 and the spool's
// and the engine's files 0644, readable by every local user).
import { expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUN_FLAGS } from "../../src/runtime-flags.ts";

/** Every path below `dir` with its permission bits. */
function modes(dir: string): Array<[string, number]> {
  const out: Array<[string, number]> = [];
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    const path = join(dir, name);
    out.push([name, statSync(path).mode & 0o777]);
  }
  return out;
}

test("a DATA_DIR the service creates is 0700, and its files (spool, engine, root token) are not readable by others", async () => {
  const parent = mkdtempSync(join(tmpdir(), "data-mode-"));
  const dir = join(parent, "data");
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  // No ANALYTICS_ROOT_TOKEN: the generated token file is checked too.
  const proc = Bun.spawn([process.execPath, ...BUN_FLAGS, "src/main.ts"], {
    env: { PATH: process.env.PATH ?? "", PORT: String(port), HOST: "127.0.0.1", DATA_DIR: dir },
    stdout: "pipe",
    stderr: "pipe",
  });
  try {
    const reader = proc.stdout.getReader();
    let out = "";
    while (!out.includes('"listening"')) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the service exited: ${out}`);
      out += new TextDecoder().decode(value);
    }
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const all = modes(dir);
    expect(all.map(([name]) => name)).toEqual(expect.arrayContaining(["root-token", "spool", "clickhouse"]));
    expect(all.length).toBeGreaterThan(20); // the engine's metadata and parts are among them
    expect(all.filter(([, mode]) => (mode & 0o077) !== 0)).toEqual([]);
  } finally {
    proc.kill("SIGTERM");
    await proc.exited;
    rmSync(parent, { recursive: true, force: true });
  }
}, 60_000);
