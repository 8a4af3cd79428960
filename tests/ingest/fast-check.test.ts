// checkItem (src/ingest/schemas.ts) is an accept-only shortcut past valibot for valid items. It must
// never accept what the schema refuses, and what it accepts must come out exactly as valibot
// builds it (same fields, same order: JSON.stringify of `properties` is stored as is). Checked
// differentially over the fuzz corpus: valid items of every type and key kind, the same items
// with 1–3 mutations that make them invalid, and sanitizer bait (__proto__ and friends). Each item
// goes through JSON text, as a request body does.
import { describe, expect, test } from "bun:test";
import * as v from "valibot";
import { checkItem, ITEM_SCHEMAS, type ItemType } from "../../src/ingest/schemas.ts";
import { ITEM_TYPES, Rng, badItem, sanitizeBait, toJson, validItem, type KeyKind } from "./fuzz-corpus.ts";
import { testSeed } from "../helpers/seed.ts";

const seed = testSeed("fast-check", 20261128);

function compare(json: string, type: ItemType): "accepted" | "declined" {
  const raw = JSON.parse(json) as unknown;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return "declined";
  const fast = checkItem(raw as Record<string, unknown>, type);
  const slow = v.safeParse(ITEM_SCHEMAS[type], raw);
  if (fast === undefined) return "declined";
  if (!slow.success) throw new Error(`checkItem accepted what valibot refuses (${slow.issues[0].message}): ${json.slice(0, 500)}`);
  // Same keys in the same order, same values.
  expect(JSON.stringify(fast)).toBe(JSON.stringify(slow.output));
  expect(fast).toEqual(slow.output as Record<string, unknown>);
  return "accepted";
}

describe("checkItem agrees with the valibot schemas", () => {
  test.each(ITEM_TYPES.map((t) => [t]))("%s items: valid ones are accepted as valibot builds them; no invalid one is accepted", (type) => {
    const rng = new Rng(seed ^ ITEM_TYPES.indexOf(type));
    let accepted = 0;
    let invalidAccepted = 0;
    for (let i = 0; i < 1500; i++) {
      const kind: KeyKind = rng.chance(0.5) ? "secret" : "public";
      const { item, good } = validItem(rng, type, kind, rng.chance(0.5));
      if (rng.chance(0.2)) sanitizeBait(rng, item, good);
      if (compare(toJson(item), type) === "accepted") accepted++;
      const bad = badItem(rng, type, kind, rng.chance(0.5));
      const json = toJson(bad.item);
      const raw = JSON.parse(json) as unknown;
      // Mutations such as "ip (public key)" are invalid for the key, not for the schema: only the
      // schema's verdict matters here, and compare() checks checkItem against it.
      if (compare(json, type) === "accepted" && !v.safeParse(ITEM_SCHEMAS[type], raw).success) invalidAccepted++;
    }
    expect(invalidAccepted).toBe(0);
    // The shortcut must actually take most valid items (not decline everything), or it saves nothing.
    expect(accepted).toBeGreaterThan(500);
  });

  test("strings with lone surrogates, and every edge of the limits", () => {
    const base = { name: "x" };
    const cases: Array<[Record<string, unknown>, boolean]> = [
      [{ ...base, user_agent: "a\ud800" }, false],
      [{ ...base, user_agent: "\udc00a" }, false],
      [{ ...base, user_agent: "ok 😀" }, true],
      [{ ...base, name: "" }, false],
      [{ ...base, name: "n".repeat(120) }, true],
      [{ ...base, name: "n".repeat(121) }, false],
      [{ ...base, timestamp: 0 }, true],
      [{ ...base, timestamp: -1 }, false],
      [{ ...base, timestamp: 1.5 }, false],
      [{ ...base, timestamp: "2026-11-28T01:02:03.123+01:00" }, true],
      [{ ...base, timestamp: "2026-13-28T01:02:03Z" }, false],
      [{ ...base, url: "https://a.example/" + "p".repeat(2048 - 18) }, true],
      [{ ...base, url: "https://a.example/" + "p".repeat(2049 - 18) }, false],
      [{ ...base, url: "HTTPS://A.EXAMPLE/" }, true],
      [{ ...base, url: "javascript:alert(1)" }, false],
      [{ ...base, referrer: "" }, true],
      [{ ...base, referrer: "android-app://com.x" }, true],
      [{ ...base, referrer: "javascript:x" }, false],
      [{ ...base, ip: "01.2.3.4" }, false],
      [{ ...base, ip: "::ffff:1.2.3.4" }, true],
      [{ ...base, properties: Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, i])) }, true],
      [{ ...base, properties: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, i])) }, false],
      [{ ...base, properties: { ["k".repeat(65)]: 1 } }, false],
      [{ ...base, properties: { a: "s".repeat(513) } }, false],
      [{ ...base, properties: { a: { nested: 1 } } }, false],
      [{ ...base, properties: [] }, false],
      [{ ...base, conversion: 1 }, false],
      [{ ...base, type: "event" }, true],
      [{ ...base, type: "pageview" }, false],
      [{ ...base, service_id: "Shop" }, false],
    ];
    for (const [item, valid] of cases) {
      const json = JSON.stringify(item);
      expect(v.safeParse(ITEM_SCHEMAS.event, JSON.parse(json)).success).toBe(valid);
      const verdict = compare(json, "event");
      if (!valid) expect(verdict).toBe("declined");
    }
    // A properties object holding a key valibot skips is left to valibot.
    expect(checkItem(JSON.parse('{"name":"x","properties":{"__proto__":1,"a":2}}'), "event")).toBeUndefined();
  });
});
