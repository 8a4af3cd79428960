// SIGKILL at random moments: everything whose append resolved must be readable afterwards, once.
// (A killed process keeps its page cache, so this proves the write/recovery logic, not the fsync:
// power-loss safety rests on the fdatasync before each acknowledgement.)
import { afterEach, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import path from "node:path";
import { openSpool } from "../../src/spool/spool.ts";
import { recordingLogger, removeTempDirs, tempDir, texts } from "./support.ts";

afterEach(removeTempDirs);

const BUN = path.resolve(import.meta.dir, "../../node_modules/.bin/bun");
const FIXTURE = path.join(import.meta.dir, "fixtures/append-loop.ts");

/**
 * Runs the fixture and SIGKILLs it once it acknowledged `acks` appends (or after `ms`, which may
 * land while it is still opening and recovering); returns every id it printed.
 */
async function runAndKill(dir: string, run: string, kill: { acks: number } | { ms: number }): Promise<string[]> {
  const child = Bun.spawn([BUN, FIXTURE, dir, run], { stdout: "pipe", stderr: "pipe" });
  const decoder = new TextDecoder();
  let text = "";
  let killed = false;
  const acks = "acks" in kill ? kill.acks : Infinity;
  if ("ms" in kill) setTimeout(() => ((killed = true), child.kill("SIGKILL")), kill.ms);
  for await (const chunk of child.stdout) {
    text += decoder.decode(chunk, { stream: true });
    if (!killed && text.split("\n").length - 1 >= acks) {
      child.kill("SIGKILL");
      killed = true; // keep reading: lines printed before the kill are still in the pipe
    }
  }
  await child.exited;
  expect(child.signalCode, await new Response(child.stderr).text()).toBe("SIGKILL");
  return text.split("\n").slice(0, -1); // a cut-off last line was never fully printed
}

test("every acknowledged append survives SIGKILL at random moments, exactly once", async () => {
  const dir = tempDir();
  const acked: string[] = [];
  const kills = [
    { acks: 50 + Math.floor(Math.random() * 1500) },
    { ms: Math.random() * 60 }, // likely during start-up: open, recovery of the last segment
    { acks: 1 + Math.floor(Math.random() * 300) },
    { ms: 60 + Math.random() * 200 },
    { acks: Math.floor(Math.random() * 3000) },
  ];
  for (const [run, kill] of kills.entries()) acked.push(...(await runAndKill(dir, `r${run}`, kill)));
  expect(acked.length).toBeGreaterThan(100);

  const spool = await openSpool({ dir, capBytes: 1 << 30, logger: recordingLogger() });
  const seen = new Map<string, number>();
  const parts = new Map<string, number>();
  for (const ref of spool.sealedSegments()) {
    for (const record of texts(await spool.readSegment(ref))) {
      const [id, part, count, pad, sum] = record.split("|");
      expect(createHash("sha1").update(`${id}|${part}|${count}|${pad}`).digest("hex")).toBe(sum!);
      const key = `${id}|${part}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
      parts.set(id!, Number(count));
    }
  }
  expect([...seen.values()].every((n) => n === 1)).toBe(true); // nothing surfaces twice
  const missing = acked.filter((id) => {
    const count = parts.get(id);
    return count === undefined || Array.from({ length: count }, (_, p) => seen.has(`${id}|${p}`)).includes(false);
  });
  expect(missing).toEqual([]);
  await spool.close();
}, 60_000);
