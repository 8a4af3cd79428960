// Start-up failures the operator can fix get one line naming the setting and exit code 2 (as
// configuration errors do), not a stack: a port already in use, a DATA_DIR that cannot be used.
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUN_FLAGS } from "../../src/runtime-flags.ts";

async function start(env: Record<string, string>) {
  const proc = Bun.spawn([process.execPath, ...BUN_FLAGS, "src/main.ts"], {
    env: { PATH: process.env.PATH ?? "", ANALYTICS_ROOT_TOKEN: "rt_startup_errors_0123456789abcdef", ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const timer = setTimeout(() => proc.kill(), 30_000);
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stderr };
}

test("a port already in use: one line naming PORT, exit 2", async () => {
  const busy = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const dir = mkdtempSync(join(tmpdir(), "startup-port-"));
  try {
    const { code, stderr } = await start({ PORT: String(busy.port), HOST: "127.0.0.1", DATA_DIR: dir });
    expect(code).toBe(2);
    expect(stderr.trim()).toBe(`start-up error: port ${busy.port} is already in use (PORT)`);
  } finally {
    busy.stop(true);
    rmSync(dir, { recursive: true, force: true });
  }
}, 40_000);

test("a DATA_DIR that cannot be created: one line naming DATA_DIR, exit 2", async () => {
  const { code, stderr } = await start({ PORT: "3999", HOST: "127.0.0.1", DATA_DIR: "/proc/no-such-dir" });
  expect(code).toBe(2);
  expect(stderr.trim()).toMatch(/^start-up error: .*\(DATA_DIR\)$/);
}, 40_000);
