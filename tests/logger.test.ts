import { expect, test } from "bun:test";
import { throttledWarn } from "../src/logger.ts";

// Operator audit: while Valkey was down, "valkey error" was logged every 0.5 s (28 lines in 14 s).
test("throttledWarn says the same warning once per interval, then again with the count it held back; another warning is not held", () => {
  const lines: Array<[string, Record<string, unknown> | undefined]> = [];
  let t = 0;
  const warn = throttledWarn({ warn: (msg, fields) => lines.push([msg, fields]) }, 30_000, () => t);
  for (; t < 14_000; t += 500) warn("valkey error", { error: "connect ECONNREFUSED" });
  expect(lines).toEqual([["valkey error", { error: "connect ECONNREFUSED" }]]);
  warn("valkey error", { error: "ERR DB index is out of range" });
  expect(lines).toHaveLength(2);
  t = 30_000;
  warn("valkey error", { error: "connect ECONNREFUSED" });
  expect(lines[2]).toEqual(["valkey error", { error: "connect ECONNREFUSED", repeated: 27 }]);
  t = 30_500;
  warn("valkey error", { error: "connect ECONNREFUSED" });
  expect(lines).toHaveLength(3);
});

test("throttledWarn.reset returns what it held back and forgets: the next warning is said at once, without a count", () => {
  const lines: Array<Record<string, unknown> | undefined> = [];
  let t = 0;
  const warn = throttledWarn({ warn: (_msg, fields) => lines.push(fields) }, 30_000, () => t);
  for (; t < 5_000; t += 500) warn("valkey error", { error: "x" });
  expect(warn.reset()).toBe(9);
  expect(warn.reset()).toBe(0);
  warn("valkey error", { error: "x" });
  expect(lines).toEqual([{ error: "x" }, { error: "x" }]);
});
