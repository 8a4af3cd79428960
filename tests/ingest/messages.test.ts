// Issue messages say what to fix in the schemas' own words ("must be …"): valibot's default texts
// ('Invalid key: Expected "items" but received undefined', 'Invalid finite: Received Infinity')
// reached clients where a schema set no message (bad-input audit).
import { expect, test } from "bun:test";
import * as v from "valibot";
import { plainMessage, toIssues } from "../../src/errors.ts";
import { BatchBody, ITEM_SCHEMAS } from "../../src/ingest/schemas.ts";
import { CreateKeyBody } from "../../src/auth/key-routes.ts";

const issuesOf = (schema: v.GenericSchema, input: unknown) => {
  const r = v.safeParse(schema, input);
  return r.success ? [] : toIssues(r.issues);
};

test("the audit's four cases get messages that say what to fix", () => {
  expect(issuesOf(BatchBody, {})).toEqual([{ path: "items", message: "is required" }]);
  expect(issuesOf(BatchBody, [{ type: "event", name: "x" }])).toEqual([{ path: "items", message: "is required" }]);
  expect(issuesOf(BatchBody, "x")).toEqual([{ path: "", message: "must be an object (received \"x\")" }]);
  expect(issuesOf(ITEM_SCHEMAS.event, { name: "x", properties: { n: Infinity } })).toContainEqual({ path: "properties.n", message: "must be a finite number" });
  expect(issuesOf(ITEM_SCHEMAS.event, { name: "x", properties: { "": 1 } })).toContainEqual({ path: "properties.", message: "keys must not be empty" });
  expect(issuesOf(ITEM_SCHEMAS.event, { name: "x", timestamp: 1795915276266.7373 })).toContainEqual({ path: "timestamp", message: "epoch milliseconds must be a whole number" });
});

test("no issue of any item, batch or key field, for any wrong value, is one of valibot's default texts", () => {
  const values: unknown[] = [null, 1.5, -1, "x", "", true, [], {}, Infinity, 1e20, "a".repeat(5000), [1], { "": 1 }, { a: Infinity }, { a: [1] }];
  const schemas: Array<[string, v.GenericSchema, Record<string, unknown>]> = [
    ...Object.entries(ITEM_SCHEMAS).map(([type, schema]) => [type, schema, { name: "x", url: "https://a.example/", funnel: "f", step: 1, message: "m" }] as [string, v.GenericSchema, Record<string, unknown>]),
    ["batch", BatchBody, { items: [{}] }],
    ["key", CreateKeyBody, { type: "public", service_id: "shop" }],
  ];
  const defaults: string[] = [];
  let checked = 0;
  for (const [name, schema, base] of schemas) {
    const fields = Object.keys((schema as { entries?: object }).entries ?? base);
    for (const input of [...values, ...fields.flatMap((field) => values.map((value) => ({ ...base, [field]: value })))]) {
      for (const issue of issuesOf(schema, input)) {
        checked++;
        if (/^Invalid \w+/.test(issue.message)) defaults.push(`${name} ${issue.path}: ${issue.message}`);
      }
    }
  }
  expect(checked).toBeGreaterThan(500);
  expect([...new Set(defaults)]).toEqual([]);
});

test("plainMessage rewrites valibot's defaults and keeps every other message", () => {
  expect(plainMessage("Invalid type: Expected string but received null")).toBe("must be a string (received null)");
  expect(plainMessage('Invalid type: Expected "event" but received "x"')).toBe('must be "event" (received "x")');
  expect(plainMessage("Invalid length: Expected <=45 but received 5000")).toBe("must be at most 45 long (received 5000)");
  expect(plainMessage("Invalid integer: Received 1.5")).toBe("must be a whole number (received 1.5)");
  expect(plainMessage("must be at most 120 characters")).toBe("must be at most 120 characters");
});

test("a refused batch's message names the field and says what to fix", () => {
  expect(issuesOf(BatchBody, { items: "x" })).toEqual([{ path: "items", message: "must be an array of 1 to 500 items" }]);
  expect(issuesOf(BatchBody, { items: [] })).toEqual([{ path: "items", message: "must hold 1 to 500 items" }]);
});
