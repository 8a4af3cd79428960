// What a key looks like: a type prefix and 43 random base62 characters (≥ 256 bits). Base62 keeps
// keys one "word" (double-click selects all of it, no URL escaping in a `?key=` query). Hashes
// use node:crypto's synchronous SHA-256 (Web Crypto's digest is a worker-thread round trip).

import { createHash } from "node:crypto";
import { BoundedMap } from "../memo.ts";

export type KeyType = "public" | "secret" | "admin";

export const KEY_PREFIX: Readonly<Record<KeyType, string>> = { public: "pk_", secret: "sk_", admin: "ak_" };

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/** 43 × log2(62) ≈ 256.03 bits: at least as strong as 32 random bytes. */
const SECRET_CHARS = 43;
const KEY_SHAPE = /^(pk|sk|ak)_[0-9A-Za-z]{43}$/;
const TYPE_OF_PREFIX: Readonly<Record<string, KeyType>> = { pk: "public", sk: "secret", ak: "admin" };

/** `length` uniformly random base62 characters from the Web Crypto generator. */
export function randomBase62(length: number): string {
  let out = "";
  while (out.length < length) {
    const bytes = crypto.getRandomValues(new Uint8Array(length * 2));
    for (const byte of bytes) {
      // 248 = 4 × 62: rejecting the top 8 byte values keeps every character equally likely.
      if (byte < 248) out += ALPHABET[byte % 62];
      if (out.length === length) break;
    }
  }
  return out;
}

/** A new key of `type`: prefix + 43 random base62 characters. */
export function generateKey(type: KeyType): string {
  return KEY_PREFIX[type] + randomBase62(SECRET_CHARS);
}

/** A new key id (`key_` + 16 base62 characters); ids are not secret. */
export function generateKeyId(): string {
  return `key_${randomBase62(16)}`;
}

/** A new root token (`rt_` + 43 base62 characters). */
export function generateRootToken(): string {
  return `rt_${randomBase62(SECRET_CHARS)}`;
}

/** The type a string claims by its shape, or null when it is not shaped like one of our keys. */
export function keyTypeOf(presented: string): KeyType | null {
  if (!KEY_SHAPE.test(presented)) return null;
  return TYPE_OF_PREFIX[presented.slice(0, 2)] ?? null;
}


/** The part of a key shown to humans (lists, logs): its first 8 characters, e.g. `pk_Ab3xY`. */
export function keyPrefixOf(key: string): string {
  return key.slice(0, 8);
}

// Every request presents its key; the same few keys come back all day, and each digest costs a
// few µs. Hashes of recent keys are kept (never the other way round), of strings up to
// REMEMBERED_KEY_LENGTH only: keys are 46 characters and a root token a few dozen, while a bearer
// token can be as long as the headers (64 KiB), and 10,000 of those are 640 MB.
const recentHashes = new BoundedMap<string, string>(10_000);
const REMEMBERED_KEY_LENGTH = 128;

/** hashKey's answer when the key's hash is remembered, else undefined. */
export function knownKeyHash(key: string): string | undefined {
  return recentHashes.get(key);
}

/** Hex SHA-256 of a key: the only form in which keys are stored. */
export function hashKey(key: string): string {
  const known = recentHashes.get(key);
  if (known !== undefined) return known;
  const hash = createHash("sha256").update(key).digest("hex");
  if (key.length <= REMEMBERED_KEY_LENGTH) recentHashes.set(key, hash);
  return hash;
}

/**
 * Equality that takes the same time wherever the inputs differ, so comparing a secret leaks
 * nothing by timing. Inputs of different lengths are unequal at once: callers compare fixed-length
 * values (hashes), whose length is no secret.
 */
export function constantTimeEqual(a: string | Uint8Array, b: string | Uint8Array): boolean {
  if (typeof a === "string" && typeof b === "string") {
    // UTF-16 code units directly (no encoding per call): the same verdict as comparing the bytes.
    if (a.length !== b.length) return false;
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
    return diff === 0;
  }
  const x = typeof a === "string" ? new TextEncoder().encode(a) : a;
  const y = typeof b === "string" ? new TextEncoder().encode(b) : b;
  if (x.length !== y.length) return false;
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i]! ^ y[i]!;
  return diff === 0;
}
