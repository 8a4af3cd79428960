// Summarizes a Chrome-format .cpuprofile (what `bun --cpu-prof` writes): time per function (self
// and inclusive) and per area of the code (a src/ directory, a package, Bun's internals), as
// shares of the busy (non-idle) time.
//
//   bun bench/lib/profile.ts <file.cpuprofile> [top]
import { readFileSync } from "node:fs";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: Node[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface Row {
  name: string;
  ms: number;
  share: number;
}

export interface ProfileSummary {
  file: string;
  wallMs: number;
  busyMs: number;
  idleMs: number;
  gcMs: number;
  self: Row[];
  inclusive: Row[];
  areas: Row[];
}

const SPECIAL = new Set(["(idle)", "(program)", "(garbage collector)", "(root)"]);

function shortUrl(url: string): string {
  if (!url) return "";
  const nm = url.lastIndexOf("node_modules/");
  if (nm >= 0) return url.slice(nm + "node_modules/".length);
  const src = url.indexOf("/src/");
  if (src >= 0) return url.slice(src + 1);
  const bench = url.indexOf("/bench/");
  if (bench >= 0) return url.slice(bench + 1);
  return url;
}

/** The area a frame belongs to: src/<dir>, a package name, or Bun/JS internals. */
export function areaOf(url: string, fn: string): string {
  if (SPECIAL.has(fn)) return fn;
  const u = shortUrl(url);
  if (!u) return "(native / runtime)";
  if (u.startsWith("src/")) {
    const parts = u.split("/");
    return parts.length > 2 ? `${parts[0]}/${parts[1]}` : u;
  }
  if (url.includes("node_modules/")) {
    const parts = u.split("/");
    return parts[0]!.startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }
  if (u.startsWith("node:") || u.startsWith("bun:") || u.startsWith("builtin:") || u.includes("internal")) return "(runtime builtins)";
  return u;
}

export function summarizeProfile(file: string, top = 25): ProfileSummary {
  const p = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map<number, Node>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) byId.set(n.id, n);
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const key = (n: Node) => {
    const fn = n.callFrame.functionName || "(anonymous)";
    if (SPECIAL.has(fn)) return fn;
    const u = shortUrl(n.callFrame.url);
    const name = fn.length > 60 ? `${fn.slice(0, 57)}...` : fn;
    return u ? `${name} ${u}:${n.callFrame.lineNumber + 1}` : name;
  };
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  const areas = new Map<string, number>();
  let idle = 0;
  let gc = 0;
  let total = 0;
  // Bun's sampler takes samples only while the JS thread runs code: a gap between two samples
  // (timeDeltas[i]) longer than the sampling interval is time spent outside JS (the event loop
  // idle, or waiting), not time in the function sampled next. So each sample weighs at most two
  // intervals, and the wall time left over is reported as "outside JS".
  const sorted = [...p.timeDeltas].sort((a, b) => a - b);
  const interval = sorted[sorted.length >> 1] ?? 1000;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = Math.min(p.timeDeltas[i] ?? 0, 2 * interval) / 1000; // µs → ms
    const node = byId.get(p.samples[i]!);
    if (!node) continue;
    total += dt;
    const fn = node.callFrame.functionName;
    if (fn === "(idle)") {
      idle += dt;
      continue;
    }
    if (fn === "(garbage collector)") gc += dt;
    const k = key(node);
    self.set(k, (self.get(k) ?? 0) + dt);
    const area = areaOf(node.callFrame.url, fn);
    areas.set(area, (areas.get(area) ?? 0) + dt);
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const n = byId.get(id)!;
      if (n.callFrame.functionName === "(root)") break;
      const kk = key(n);
      if (seen.has(kk)) continue;
      seen.add(kk);
      incl.set(kk, (incl.get(kk) ?? 0) + dt);
    }
  }
  const wall = (p.endTime - p.startTime) / 1000;
  const busy = total - idle;
  idle += Math.max(0, wall - total);
  total = Math.max(total, wall);
  const rows = (m: Map<string, number>, n: number) =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([name, ms]) => ({ name, ms, share: busy > 0 ? ms / busy : 0 }));
  return { file, wallMs: total, busyMs: busy, idleMs: idle, gcMs: gc, self: rows(self, top), inclusive: rows(incl, top), areas: rows(areas, 20) };
}

export function profileMarkdown(s: ProfileSummary, title: string, top = 15): string {
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const table = (rows: Row[], n: number) =>
    ["| function (file:line) | ms | share of busy |", "|---|---:|---:|", ...rows.slice(0, n).map((r) => `| \`${r.name.replace(/\|/g, "\\|")}\` | ${r.ms.toFixed(0)} | ${pct(r.share)} |`)].join("\n");
  return [
    `#### ${title}`,
    "",
    `Profile of ${(s.wallMs / 1000).toFixed(1)} s (the whole process life): the JS thread ran code ${(s.busyMs / 1000).toFixed(1)} s (${pct(s.busyMs / s.wallMs)}); the rest it was outside JS (idle, or waiting on I/O). GC ${s.gcMs.toFixed(0)} ms. Shares below are of the JS thread's busy time.`,
    "",
    "By area (self time):",
    "",
    ["| area | ms | share of busy |", "|---|---:|---:|", ...s.areas.slice(0, 12).map((r) => `| ${r.name} | ${r.ms.toFixed(0)} | ${pct(r.share)} |`)].join("\n"),
    "",
    "Top functions by self time:",
    "",
    table(s.self, top),
    "",
    "Top functions by inclusive time (a function and everything it called):",
    "",
    table(s.inclusive, top),
    "",
  ].join("\n");
}

if (import.meta.main) {
  const file = process.argv[2];
  if (!file) throw new Error("usage: profile.ts <file.cpuprofile> [top]");
  console.log(profileMarkdown(summarizeProfile(file, Number(process.argv[3] ?? 25)), file, Number(process.argv[3] ?? 25)));
}
