// The load tools the benchmark needs (wrk from Debian), installed when missing and we are root.
import { spawnSync } from "bun";

export function ensureWrk(): void {
  if (Bun.which("wrk")) return;
  const isRoot = process.getuid?.() === 0;
  const how = "apt-get update && apt-get install -y wrk";
  if (!isRoot) throw new Error(`wrk is not installed; install it with: sudo ${how}`);
  console.error(`[bench] wrk is missing; running: ${how}`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  spawnSync(["apt-get", "update", "-qq"], { stdout: "inherit", stderr: "inherit", env });
  const r = spawnSync(["apt-get", "install", "-y", "-qq", "wrk"], { stdout: "inherit", stderr: "inherit", env });
  if (r.exitCode !== 0 || !Bun.which("wrk")) throw new Error(`could not install wrk; install it with: ${how}`);
}
