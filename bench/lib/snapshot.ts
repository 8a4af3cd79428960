// The code under test, frozen when the benchmark starts. Others edit the working tree while a
// benchmark runs (a half-saved file can even stop the service from starting), so the service
// runs from a snapshot under .tmp/bench/snapshots/ that shares this checkout's node_modules:
// - `head` (default): the committed HEAD, via `git archive` (reads objects only: no checkout, no
//   index, nothing of anyone's working files is touched), so results match the recorded commit;
// - `worktree`: a copy of the working tree's src/ and infrastructure/ as they are right now
//   (to measure uncommitted changes).
import { spawnSync } from "bun";
import { cpSync, existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO, WORK } from "./procs.ts";

export interface Snapshot {
  root: string;
  commit: string;
  kind: "head" | "worktree";
  /** Paths that differed from HEAD in the working tree when the snapshot was taken. */
  dirty: string[];
}

function git(args: string[]): string {
  const r = spawnSync(["git", ...args], { cwd: REPO, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`git ${args.join(" ")}: ${r.stderr.toString()}`);
  return r.stdout.toString().trim();
}

const PATHS = ["src", "infrastructure", "package.json", "tsconfig.json"];

export function takeSnapshot(kind: "head" | "worktree"): Snapshot {
  const commit = git(["rev-parse", "--short=12", "HEAD"]);
  const dirty = git(["status", "--porcelain", "--", "src", "infrastructure", "package.json"]).split("\n").filter(Boolean).map((l) => l.trim());
  const root = join(WORK, "snapshots", kind === "head" ? commit : `worktree-${Date.now()}`);
  if (kind === "head" && existsSync(join(root, ".complete"))) return { root, commit, kind, dirty };
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  if (kind === "head") {
    const present = PATHS.filter((p) => git(["ls-tree", "--name-only", "HEAD", p]) !== "");
    const archive = spawnSync(["git", "archive", "--format=tar", "HEAD", ...present], { cwd: REPO, stdout: "pipe", stderr: "pipe" });
    if (archive.exitCode !== 0) throw new Error(`git archive: ${archive.stderr.toString()}`);
    const untar = spawnSync(["tar", "-x", "-C", root], { stdin: archive.stdout, stdout: "pipe", stderr: "pipe" });
    if (untar.exitCode !== 0) throw new Error(`tar: ${untar.stderr.toString()}`);
  } else {
    for (const p of PATHS) if (existsSync(join(REPO, p))) cpSync(join(REPO, p), join(root, p), { recursive: true });
  }
  symlinkSync(join(REPO, "node_modules"), join(root, "node_modules"));
  writeFileSync(join(root, ".complete"), `${commit}\n`);
  return { root, commit, kind, dirty };
}
