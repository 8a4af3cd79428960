import { describe, expect, test } from "bun:test";
import {
  errorFingerprint,
  fnv1a64,
  normaliseErrorText,
  topFrame,
} from "../../src/ingest/enrich/error-fingerprint.ts";

const V8_STACK = `TypeError: Cannot read properties of undefined (reading 'id')
    at renderCart (https://shop.example/static/js/main.3f2a1b9c.js:120:17)
    at async loadPage (https://shop.example/static/js/main.3f2a1b9c.js:88:5)`;

describe("fnv1a64", () => {
  test("matches the published FNV-1a 64-bit test vectors", () => {
    expect(fnv1a64("")).toBe("cbf29ce484222325");
    expect(fnv1a64("a")).toBe("af63dc4c8601ec8c");
    expect(fnv1a64("foobar")).toBe("85944171f73967e8");
  });
});

describe("normaliseErrorText", () => {
  test.each([
    ["Order 12345 not found", "Order <n> not found"],
    ["User 550e8400-e29b-41d4-a716-446655440000 missing", "User <uuid> missing"],
    ["bad pointer 0xDEADBEEF", "bad pointer <hex>"],
    ["doc 65a1f0c2e4b0a1b2c3d4e5f6 gone", "doc <hex> gone"],
    [`Unexpected token '<' in "config.json"`, "Unexpected token <str> in <str>"],
    ["can't find `thing`", "can't find <str>"],
    ["took 12.5s   to\nload", "took <n>s to load"],
  ])("%p → %p", (input, expected) => {
    expect(normaliseErrorText(input)).toBe(expected);
  });

  test("ordinary words made of hex letters stay", () => {
    expect(normaliseErrorText("decade facade accede")).toBe("decade facade accede");
  });
});

describe("topFrame", () => {
  test("V8", () => {
    expect(topFrame(V8_STACK)).toEqual({ fn: "renderCart", file: "/static/js/main.<hex>.js" });
    expect(topFrame("Error: x\n    at https://cdn.example/app.js?v=3:1:99")).toEqual({ fn: "", file: "/app.js" });
    expect(topFrame("Error\n    at async Promise.all (index 0)")?.fn).toBe("Promise.all");
  });

  test("Firefox and Safari", () => {
    expect(topFrame("renderCart@https://shop.example/app.js:120:17\nloadPage@https://shop.example/app.js:88:5")).toEqual({
      fn: "renderCart",
      file: "/app.js",
    });
    expect(topFrame("@https://shop.example/app.js:3:1")).toEqual({ fn: "", file: "/app.js" });
  });

  test("no frame in text that is not a stack", () => {
    expect(topFrame("Error: mail me at someone@example.com")).toBeNull();
    expect(topFrame("")).toBeNull();
  });
});

describe("errorFingerprint", () => {
  test("is 16 hex chars and stable", () => {
    const fp = errorFingerprint("Order 42 not found", V8_STACK, undefined);
    expect(fp).toMatch(/^[0-9a-f]{16}$/);
    expect(errorFingerprint("Order 42 not found", V8_STACK, undefined)).toBe(fp);
  });

  test("errors differing only in an id share a fingerprint", () => {
    expect(errorFingerprint("Order 42 not found", V8_STACK, undefined)).toBe(
      errorFingerprint("Order 97731 not found", V8_STACK, undefined),
    );
    expect(errorFingerprint("User 550e8400-e29b-41d4-a716-446655440000 missing", undefined, undefined)).toBe(
      errorFingerprint("User 123e4567-e89b-12d3-a456-426614174000 missing", undefined, undefined),
    );
  });

  test("different messages differ", () => {
    expect(errorFingerprint("Order 42 not found", V8_STACK, undefined)).not.toBe(
      errorFingerprint("Order 42 not paid", V8_STACK, undefined),
    );
  });

  test("line numbers and the bundle hash do not matter; the function does", () => {
    const moved = V8_STACK.replace(":120:17", ":131:2").replaceAll("3f2a1b9c", "77e0c1d4");
    expect(errorFingerprint("boom", moved, undefined)).toBe(errorFingerprint("boom", V8_STACK, undefined));
    const otherFunction = V8_STACK.replace("renderCart", "renderHeader");
    expect(errorFingerprint("boom", otherFunction, undefined)).not.toBe(errorFingerprint("boom", V8_STACK, undefined));
  });

  test("window.onerror's 'Uncaught ' prefix is ignored", () => {
    expect(errorFingerprint("Uncaught TypeError: x is not a function", undefined, undefined)).toBe(
      errorFingerprint("TypeError: x is not a function", undefined, undefined),
    );
  });

  test("without a stack, the source file stands in for the frame", () => {
    const a = errorFingerprint("boom", undefined, "https://shop.example/app.js");
    expect(errorFingerprint("boom", undefined, "https://shop.example/app.js?v=2")).toBe(a);
    expect(errorFingerprint("boom", undefined, "https://shop.example/vendor.js")).not.toBe(a);
    expect(errorFingerprint("boom", "renderCart@https://shop.example/app.js:1:1", undefined)).not.toBe(a); // a function adds to it
  });
});
