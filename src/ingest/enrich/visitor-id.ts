// Web Crypto only (crypto.subtle), so the same code runs on Bun, Node and edge runtimes.

const encoder = new TextEncoder();

// Importing an HMAC key costs more than the HMAC itself; the salt of a day is one array object
// (the salt store caches it), so the key is derived once per day per process.
const keys = new WeakMap<Uint8Array, Promise<CryptoKey>>();

function hmacKey(salt: Uint8Array): Promise<CryptoKey> {
  let key = keys.get(salt);
  if (key === undefined) {
    // A copy: Web Crypto wants an ArrayBuffer-backed view, and the key must not follow later writes.
    key = crypto.subtle.importKey("raw", new Uint8Array(salt), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    keys.set(salt, key);
  }
  return key;
}

function hex(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0");
  return out;
}

/**
 * A visitor id that cannot be turned back into the IP: HMAC-SHA-256 keyed with the day's salt
 * over (service, IP, user agent), first 16 bytes as 32 hex chars. The salt changes daily and is
 * never stored with the data, so ids cannot be linked across days or recomputed from a known IP.
 */
export async function visitorId(salt: Uint8Array, serviceId: string, ip: string, ua: string): Promise<string> {
  if (salt.byteLength < 16) throw new RangeError("visitor-id salt must be at least 16 bytes");
  // NUL separators: no service id, IP or user agent contains one, so two inputs cannot run together.
  const message = encoder.encode(`${serviceId}\0${ip}\0${ua}`);
  const mac = await crypto.subtle.sign("HMAC", await hmacKey(salt), message);
  return hex(new Uint8Array(mac, 0, 16));
}
