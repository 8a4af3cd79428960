// node:crypto, synchronous: Web Crypto's `subtle.sign` answered through a worker-thread round trip
// (25–35 µs per call against ~1 µs, with a p99 of ~100 µs and stray waits of 2–4 ms on the shared
// 2-core machine; bench/RESULTS.md, 2026-11-29 06:41). The service runs on Bun, which has it.
import { createHmac } from "node:crypto";

/**
 * A visitor id that cannot be turned back into the IP: HMAC-SHA-256 keyed with the day's salt
 * over (service, IP, user agent), first 16 bytes as 32 hex chars. The salt changes daily and is
 * never stored with the data, so ids cannot be linked across days or recomputed from a known IP.
 */
export function visitorId(salt: Uint8Array, serviceId: string, ip: string, ua: string): string {
  if (salt.byteLength < 16) throw new RangeError("visitor-id salt must be at least 16 bytes");
  // NUL separators: no service id, IP or user agent contains one, so two inputs cannot run together.
  return createHmac("sha256", salt).update(`${serviceId}\0${ip}\0${ua}`).digest("hex").slice(0, 32);
}
