// The embedded engine's allocator (jemalloc inside libchdb) reads JE_MALLOC_CONF when the process
// starts; src/runtime-flags.ts sets it so freed memory stays for a minute instead of 5 s (a report
// read a few seconds after another faulted its working memory in again). A setting the library no
// longer read would be silently lost: jemalloc's `abort_conf` makes a bad option fatal, so these
// runs tell that the variable is read and that the service's value is one jemalloc accepts.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RUNTIME_ENV } from "../../src/runtime-flags.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function engineRun(jeMallocConf: string): Promise<{ code: number; out: string }> {
  const dir = mkdtempSync(join(tmpdir(), "engine-allocator-"));
  dirs.push(dir);
  const child = Bun.spawn([process.execPath, join(import.meta.dir, "fixtures", "engine-query.ts"), join(dir, "engine")], {
    env: { ...process.env, JE_MALLOC_CONF: jeMallocConf },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, code] = await Promise.all([new Response(child.stdout).text(), child.exited]);
  return { code, out: out.trim() };
}

test("the engine reads JE_MALLOC_CONF (an unknown option is fatal with abort_conf), and the runtime value is valid", async () => {
  const bogus = await engineRun("abort_conf:true,no_such_option:1");
  expect(bogus.code).not.toBe(0);
  const ours = await engineRun(`${RUNTIME_ENV.JE_MALLOC_CONF},abort_conf:true`);
  expect(ours).toEqual({ code: 0, out: "499500" });
}, 60_000);
