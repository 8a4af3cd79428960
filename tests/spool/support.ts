// Shared by the spool tests: scratch directories that are always removed, and a logger that
// remembers what it was told so tests can assert "logged once".
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Spool, SpoolLogger } from "../../src/spool/spool.ts";

const made: string[] = [];

/** Removes every directory `tempDir` made; each test file registers it with `afterEach`. */
export function removeTempDirs(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** A fresh directory under the OS temp dir, removed by `removeTempDirs`. */
export function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), "spool-test-"));
  made.push(dir);
  return dir;
}

/** A logger that records every call instead of printing. */
export function recordingLogger(): SpoolLogger & { lines: { level: string; message: string }[] } {
  const lines: { level: string; message: string }[] = [];
  const log = (level: string) => (message: string) => void lines.push({ level, message });
  return { lines, info: log("info"), warn: log("warn"), error: log("error") };
}

/** Segment file names in `dir`, sorted. */
export function segmentFiles(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.startsWith("seg-")).sort();
}

/** Records as text, for readable assertions. */
export function texts(records: readonly Uint8Array[]): string[] {
  return records.map((r) => new TextDecoder().decode(r));
}

/** Every record of every sealed segment, oldest first, as text. */
export async function readAll(spool: Spool): Promise<string[]> {
  const out: string[] = [];
  for (const ref of spool.sealedSegments()) out.push(...texts(await spool.readSegment(ref)));
  return out;
}
