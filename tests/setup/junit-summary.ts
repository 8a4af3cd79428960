/**
 * Reads a JUnit XML report (as `bun test --reporter=junit` writes it) and prints one line:
 *
 *   N passed, N failed            (and `, N skipped` when some were skipped or todo)
 *
 * Every <testcase> counts once: failed when it holds a <failure> or <error>, skipped when it holds
 * a <skipped>, passed otherwise. Exit code: 0 when none failed, 1 when some failed, 2 when the
 * report is missing, unreadable or lists no test at all (the line then says why).
 *
 * Bun's JUnit report leaves out errors that happen outside any test (a test file that throws while
 * loading): its console summary counts them as ` N error(s)`, and as failed tests. Given the
 * console output of the same run (`--console <file>`), those errors are added to the failed count.
 *
 * Usage: bun tests/setup/junit-summary.ts <junit.xml> [--console <bun-test-output.txt>]
 */
import { readFileSync } from "node:fs";

export interface JUnitCounts {
  passed: number;
  failed: number;
  skipped: number;
}

// An attribute list may hold quoted `>` characters, so quoted values are matched whole.
const ATTRS = String.raw`(?:[^>"']|"[^"]*"|'[^']*')*?`;
const TESTCASE = new RegExp(String.raw`<testcase\b${ATTRS}(?:\/>|>([\s\S]*?)<\/testcase\s*>)`, "g");
const FAILED = /<(?:failure|error)\b/;
const SKIPPED = /<skipped\b/;

export function countJUnit(xml: string): JUnitCounts {
  const counts: JUnitCounts = { passed: 0, failed: 0, skipped: 0 };
  // Comments and CDATA sections cannot hold test cases; blank them so that their text cannot
  // look like one.
  const text = xml.replace(/<!--[\s\S]*?-->/g, "").replace(/<!\[CDATA\[[\s\S]*?\]\]>/g, "");
  for (const match of text.matchAll(TESTCASE)) {
    const body = match[1] ?? "";
    if (FAILED.test(body)) counts.failed += 1;
    else if (SKIPPED.test(body)) counts.skipped += 1;
    else counts.passed += 1;
  }
  return counts;
}

/** The ` N error(s)` line of bun test's closing summary, 0 when there is none. */
export function consoleErrors(output: string): number {
  // Strip colours, then take the closing block: the count lines (` 3 pass`, ` 1 fail`, ...) just
  // before the last `Ran N tests across M files` line.
  const lines = output.replace(/\x1b\[[0-9;]*m/g, "").split(/\r?\n/);
  let at = lines.findLastIndex((line) => /^Ran \d+ tests? across/.test(line));
  if (at < 0) return 0;
  while (at > 0 && /^\s*\d+ \S/.test(lines[at - 1] ?? "")) {
    at -= 1;
    const match = /^\s*(\d+) errors?\s*$/.exec(lines[at] ?? "");
    if (match) return Number(match[1]);
  }
  return 0;
}

export function formatCounts({ passed, failed, skipped }: JUnitCounts): string {
  return `${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ""}`;
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const consoleAt = args.indexOf("--console");
  const consoleFile = consoleAt >= 0 ? args.splice(consoleAt, 2)[1] : undefined;
  const file = args[0];
  if (!file) {
    console.log("junit-summary: no report given (usage: bun tests/setup/junit-summary.ts <junit.xml> [--console <file>])");
    process.exit(2);
  }
  let xml: string;
  try {
    xml = readFileSync(file, "utf8");
  } catch {
    console.log(`junit-summary: no JUnit report at ${file}: the test run ended before writing it`);
    process.exit(2);
  }
  const counts = countJUnit(xml);
  if (consoleFile) {
    let errors = 0;
    try {
      errors = consoleErrors(readFileSync(consoleFile, "utf8"));
    } catch {
      console.log(`junit-summary: could not read the console output ${consoleFile}; counting the JUnit report only`);
    }
    if (errors > 0) {
      console.log(
        `junit-summary: bun test reported ${errors} error(s) outside any test case (e.g. a test file that failed to load; see the output above); counted as failed`,
      );
      counts.failed += errors;
    }
  }
  if (counts.passed + counts.failed + counts.skipped === 0) {
    console.log(`junit-summary: the JUnit report ${file} lists no test`);
    process.exit(2);
  }
  console.log(formatCounts(counts));
  process.exit(counts.failed > 0 ? 1 : 0);
}
