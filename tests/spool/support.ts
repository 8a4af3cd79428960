// Shared by the spool tests: scratch directories that are always removed, and a logger that
// remembers what it was told so tests can assert "logged once".
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { open } from "node:fs/promises";
import type { OpenFile } from "../../src/spool/segment-writer.ts";
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

/**
 * A fault-injecting `openFile` for the spool: real files, but while `disk.full` every write fails
 * with ENOSPC after writing half of its bytes (a torn write), and while `disk.noTruncate` the
 * cut-off after it fails too; while `disk.noInodes` no new segment file can be created.
 */
export function faultyDisk(): { disk: { full: boolean; noTruncate: boolean; noInodes: boolean }; openFile: OpenFile } {
  const disk = { full: false, noTruncate: false, noInodes: false };
  const enospc = () => Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
  const openFile = async (p: string, flags: number, mode: number) => {
    if (disk.noInodes) throw Object.assign(new Error(`ENOSPC: no space left on device, open '${p}'`), { code: "ENOSPC" });
    const fh = await open(p, flags, mode);
    return new Proxy(fh, {
      get(target, prop) {
        if (prop === "write") {
          return async (buf: Uint8Array, offset: number, length: number) => {
            if (!disk.full) return target.write(buf, offset, length);
            await target.write(buf, offset, Math.max(1, length >> 1));
            throw enospc();
          };
        }
        if (prop === "truncate") return (len: number) => (disk.noTruncate ? Promise.reject(enospc()) : target.truncate(len));
        const value = Reflect.get(target, prop);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  };
  return { disk, openFile };
}
