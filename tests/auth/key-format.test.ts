import { describe, expect, test } from "bun:test";
import { constantTimeEqual, generateKey, generateKeyId, generateRootToken, hashKey, keyPrefixOf, keyTypeOf, knownKeyHash, randomBase62 } from "../../src/auth/key-format.ts";
import { normalizeOrigin, originAllowed } from "../../src/auth/origin.ts";

describe("key format", () => {
  test("keys carry their type prefix and 43 base62 characters", () => {
    expect(generateKey("public")).toMatch(/^pk_[0-9A-Za-z]{43}$/);
    expect(generateKey("secret")).toMatch(/^sk_[0-9A-Za-z]{43}$/);
    expect(generateKey("admin")).toMatch(/^ak_[0-9A-Za-z]{43}$/);
    expect(generateKeyId()).toMatch(/^key_[0-9A-Za-z]{16}$/);
    expect(generateRootToken()).toMatch(/^rt_[0-9A-Za-z]{43}$/);
  });

  test("keys do not repeat, and every base62 character occurs", () => {
    const keys = new Set(Array.from({ length: 2000 }, () => generateKey("secret")));
    expect(keys.size).toBe(2000);
    const chars = new Set(randomBase62(20_000));
    expect(chars.size).toBe(62);
  });

  test("keyTypeOf reads the type from the shape only", () => {
    expect(keyTypeOf(generateKey("public"))).toBe("public");
    expect(keyTypeOf(generateKey("secret"))).toBe("secret");
    expect(keyTypeOf(generateKey("admin"))).toBe("admin");
    expect(keyTypeOf("pk_short")).toBeNull();
    expect(keyTypeOf(`xk_${"a".repeat(43)}`)).toBeNull();
    expect(keyTypeOf(`pk_${"a".repeat(42)}-`)).toBeNull();
    expect(keyTypeOf(generateRootToken())).toBeNull();
  });

  test("the prefix shown to humans is the first 8 characters", () => {
    const key = generateKey("public");
    expect(keyPrefixOf(key)).toBe(key.slice(0, 8));
    expect(keyPrefixOf(key)).toHaveLength(8);
  });

  test("hashKey remembers the hashes of key-sized strings only (a long bearer token is hashed, not kept)", async () => {
    const key = generateKey("admin");
    await hashKey(key);
    expect(knownKeyHash(key)).toBe(await hashKey(key));
    const long = `x${randomBase62(60_000)}`;
    expect(await hashKey(long)).toMatch(/^[0-9a-f]{64}$/);
    expect(knownKeyHash(long)).toBeUndefined();
  });

  test("hashKey is hex SHA-256", async () => {
    expect(await hashKey("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });

  test("constantTimeEqual compares strings and bytes", () => {
    expect(constantTimeEqual("abcd", "abcd")).toBe(true);
    expect(constantTimeEqual("abcd", "abce")).toBe(false);
    expect(constantTimeEqual("abcd", "abc")).toBe(false);
    expect(constantTimeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 3]))).toBe(true);
    expect(constantTimeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 4]))).toBe(false);
    expect(constantTimeEqual("", "")).toBe(true);
  });
});

describe("origins", () => {
  test("normalizeOrigin keeps scheme://host[:port], lowercases the host, drops default ports", () => {
    expect(normalizeOrigin("https://Shop.Example")).toBe("https://shop.example");
    expect(normalizeOrigin("HTTPS://shop.example:443")).toBe("https://shop.example");
    expect(normalizeOrigin("http://localhost:3000/")).toBe("http://localhost:3000");
    expect(normalizeOrigin("https://shop.example/path")).toBeNull();
    expect(normalizeOrigin("https://shop.example?q=1")).toBeNull();
    expect(normalizeOrigin("https://user@shop.example")).toBeNull();
    expect(normalizeOrigin("ftp://shop.example")).toBeNull();
    expect(normalizeOrigin("null")).toBeNull();
    expect(normalizeOrigin("shop.example")).toBeNull();
  });

  test("originAllowed matches exactly (host case aside), or anything with *", () => {
    const list = ["https://shop.example", "http://localhost:3000"];
    expect(originAllowed(list, "https://SHOP.example")).toBe(true);
    expect(originAllowed(list, "http://localhost:3000")).toBe(true);
    expect(originAllowed(list, "http://shop.example")).toBe(false);
    expect(originAllowed(list, "https://shop.example:8443")).toBe(false);
    expect(originAllowed(list, "https://shop.example.evil.example")).toBe(false);
    expect(originAllowed(list, "https://evil.example")).toBe(false);
    expect(originAllowed(list, "null")).toBe(false);
    expect(originAllowed([], "https://shop.example")).toBe(false);
    expect(originAllowed(["*"], "https://anything.example")).toBe(true);
  });
});
