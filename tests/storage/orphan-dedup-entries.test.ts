// Dedup-log entries of parts a kill kept from being committed (src/storage/embedded/
// orphan-dedup-entries.ts), on synthetic table directories laid out as the embedded engine lays
// them out (the engine's own layout is exercised by tests/durability/replay-repair.test.ts).
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dropOrphanDedupEntries, dropOrphansOfTable, partRange } from "../../src/storage/embedded/orphan-dedup-entries.ts";

const root = mkdtempSync(join(tmpdir(), "orphan-dedup-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function table(name: string, parts: string[], log: string): string {
  const dir = join(root, "store", name.slice(0, 3), name);
  mkdirSync(join(dir, "deduplication_logs"), { recursive: true });
  for (const p of parts) mkdirSync(join(dir, p));
  writeFileSync(join(dir, "format_version.txt"), "1");
  writeFileSync(join(dir, "deduplication_logs", "deduplication_log_1.txt"), log);
  return dir;
}
const logOf = (dir: string) => readFileSync(join(dir, "deduplication_logs", "deduplication_log_1.txt"), "utf8");

test("part names: partition and block range, or nothing for what is not a committed part", () => {
  expect(partRange("202611_1_178_32")).toEqual({ partition: "202611", min: 1, max: 178 });
  expect(partRange("all_356_356_1")).toEqual({ partition: "all", min: 356, max: 356 });
  expect(partRange("202611_5_9_2_12")).toEqual({ partition: "202611", min: 5, max: 9 }); // with a mutation version
  for (const other of ["tmp_insert_202611_3_3_0", "detached", "deduplication_logs", "format_version.txt", "202611_a_1_0", "x_1_2"]) expect(partRange(other)).toBeUndefined();
});

test("an entry above every part on disk is removed; entries of parts on disk, merged or not, and dropped ones stay", () => {
  const log = [
    "1\t202611_1_1_0\t202611_aaa_1",
    "1\t202611_2_2_0\t202611_bbb_2",
    "1\t202610_3_3_0\t202610_ccc_3",
    "2\t202610_3_3_0\t202610_ccc_3",
    "1\t202611_4_4_0\t202611_ddd_4",
    "1\t202611_5_5_0\t202611_eee_5", // the kill: no part 5 on disk
    "",
  ].join("\n");
  const dir = table("aaa1", ["202611_1_4_1", "tmp_insert_202611_5_5_0"], log);
  expect(dropOrphansOfTable(dir)).toEqual(["202611_5_5_0"]);
  expect(logOf(dir)).toBe(log.replace("1\t202611_5_5_0\t202611_eee_5\n", ""));
  expect(dropOrphansOfTable(dir)).toEqual([]); // nothing more on a second look
});

test("an INSERT split into two partitions' parts, the later-numbered one landed: the lost one's entry goes, the landed one's stays", () => {
  const log = ["1\t202610_1_1_0\t202610_a", "1\t202611_2_2_0\t202611_b", "1\t202610_3_3_0\t202610_c", "1\t202611_4_4_0\t202611_d", ""].join("\n");
  // Blocks 3 (October) and 4 (November) were the killed INSERT's; only 4 landed. November's merged
  // part 2..4 covers 3 by number, but in another partition.
  const dir = table("eee1", ["202610_1_1_0", "202611_2_4_1"], log);
  expect(dropOrphansOfTable(dir)).toEqual(["202610_3_3_0"]);
  expect(logOf(dir)).toBe(log.replace("1\t202610_3_3_0\t202610_c\n", ""));
});

test("a rewrite a kill left behind (deduplication_log_N.txt.tmp) is removed: the engine would read it as a log and refuse to open", () => {
  const dir = table("ddd1", ["all_1_1_0"], "1\tall_1_1_0\tall_x_1\n");
  writeFileSync(join(dir, "deduplication_logs", "deduplication_log_1.txt.tmp"), "1\tall_1_1_0\tall_x_1\n");
  expect(dropOrphansOfTable(dir)).toEqual([]);
  expect(readdirSync(join(dir, "deduplication_logs"))).toEqual(["deduplication_log_1.txt"]);
});

test("a table with no part left (its only insert lost) loses that entry; a log line not understood leaves the file alone", () => {
  const lost = table("bbb1", [], "1\tall_1_1_0\tall_x_1\n");
  const odd = table("ccc1", [], "1\tall_1_1_0\tall_x_1\n3\tsomething\tnew\n");
  const reports = dropOrphanDedupEntries(root);
  expect(reports).toContainEqual({ table: lost, parts: ["all_1_1_0"] });
  expect(reports.map((r) => r.table)).not.toContain(odd);
  expect(logOf(lost)).toBe("");
  expect(logOf(odd)).toBe("1\tall_1_1_0\tall_x_1\n3\tsomething\tnew\n");
});
