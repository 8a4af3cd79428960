// Browser origins as public keys list them. An origin is exactly scheme://host[:port]: the WHATWG
// URL parser lowercases scheme and host and drops default ports, so "HTTPS://Shop.Example:443"
// and "https://shop.example" compare equal, while a path, a user or another port never match.

/** Matches any origin in a key's allow-list. */
export const ANY_ORIGIN = "*";

/** The canonical `scheme://host[:port]` of an http(s) origin, or null when it is not one. */
export function normalizeOrigin(value: string): string | null {
  if (value.length > 2048) return null;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return null;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return null;
  // A trailing "/" is tolerated (people paste it); any real path, query or user is a mistake.
  if (url.username || url.password || url.search || url.hash || url.pathname !== "/") return null;
  return url.origin;
}

/** True when `origin` (a request's Origin header) is allowed by a key's `allowed` list. */
export function originAllowed(allowed: readonly string[], origin: string): boolean {
  if (allowed.includes(ANY_ORIGIN)) return true;
  const normalized = normalizeOrigin(origin);
  return normalized !== null && allowed.includes(normalized);
}
