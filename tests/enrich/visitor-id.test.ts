import { describe, expect, test } from "bun:test";
import { visitorId } from "../../src/ingest/enrich/visitor-id.ts";
import { createMemorySaltStore } from "../../src/ingest/enrich/salt-store.ts";
import { visitorHasher } from "../../src/ingest/pipeline.ts";

const SALT = new Uint8Array(32).map((_, i) => i);
const OTHER_SALT = new Uint8Array(32).map((_, i) => 255 - i);
const UA = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0";

describe("visitorId", () => {
  test("is HMAC-SHA-256(salt, service NUL ip NUL ua), first 16 bytes in hex", async () => {
    // Web Crypto as an independent reference for the node:crypto implementation.
    const key = await crypto.subtle.importKey("raw", SALT, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`shop\u00008.8.8.8\u0000${UA}`)));
    const expected = Array.from(mac.subarray(0, 16), (b) => b.toString(16).padStart(2, "0")).join("");
    const id = visitorId(SALT, "shop", "8.8.8.8", UA);
    expect(id).toBe(expected);
    expect(id).toMatch(/^[0-9a-f]{32}$/);
  });

  test("is stable for the same inputs and changes with each of them", async () => {
    const base = await visitorId(SALT, "shop", "8.8.8.8", UA);
    expect(await visitorId(SALT, "shop", "8.8.8.8", UA)).toBe(base);
    const variants = await Promise.all([
      visitorId(OTHER_SALT, "shop", "8.8.8.8", UA),
      visitorId(SALT, "blog", "8.8.8.8", UA),
      visitorId(SALT, "shop", "8.8.4.4", UA),
      visitorId(SALT, "shop", "8.8.8.8", `${UA} `),
    ]);
    expect(new Set([base, ...variants]).size).toBe(5);
  });

  test("fields cannot run into each other", async () => {
    expect(await visitorId(SALT, "ab", "1.2.3.4", "x")).not.toBe(await visitorId(SALT, "a", "b1.2.3.4", "x"));
  });

  test("a salt copy with the same bytes gives the same id", async () => {
    expect(await visitorId(new Uint8Array(SALT), "shop", "::1", UA)).toBe(await visitorId(SALT, "shop", "::1", UA));
  });

  test("refuses a salt too short to be a secret", () => {
    expect(() => visitorId(new Uint8Array(8), "shop", "8.8.8.8", UA)).toThrow(RangeError);
  });
});

describe("visitorHasher (the pipeline's remembered visitor ids)", () => {
  test("answers a remembered id synchronously, and concurrent first requests share one computation", async () => {
    const salts = createMemorySaltStore();
    let saltLookups = 0;
    const hash = visitorHasher({ saltFor: (day) => (saltLookups++, salts.saltFor(day)) });
    const first = await Promise.all(Array.from({ length: 20 }, () => hash("2026-11-28", "shop", "8.8.8.8", "UA")));
    expect(new Set(first).size).toBe(1);
    expect(saltLookups).toBe(1);
    const again = hash("2026-11-28", "shop", "8.8.8.8", "UA");
    expect(again).toBe(first[0]!); // a string, not a promise
    expect(first[0]).toBe(await visitorId(await salts.saltFor("2026-11-28"), "shop", "8.8.8.8", "UA"));
    // Another day, another salt: another id.
    expect(await hash("2026-11-29", "shop", "8.8.8.8", "UA")).not.toBe(first[0]!);
  });

  test("a failed salt look-up is not remembered: the next request tries again", async () => {
    const salts = createMemorySaltStore();
    let fail = true;
    // A fault-injecting wrapper around the real store.
    const hash = visitorHasher({ saltFor: (day) => (fail ? Promise.reject(new Error("salt store down")) : salts.saltFor(day)) });
    await expect(Promise.resolve(hash("2026-11-28", "shop", "1.1.1.1", "UA"))).rejects.toThrow("salt store down");
    fail = false;
    expect(await hash("2026-11-28", "shop", "1.1.1.1", "UA")).toMatch(/^[0-9a-f]{32}$/);
  });
});
