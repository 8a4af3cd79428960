import { normaliseIp } from "./ip-address.ts";

const UNKNOWN_IP = "0.0.0.0";

function firstValid(list: string | null): string | null {
  if (list === null) return null;
  // Several X-Forwarded-For headers arrive joined with ", "; "unknown" and garbage entries are skipped.
  for (const entry of list.split(",")) {
    const ip = normaliseIp(entry);
    if (ip !== null) return ip;
  }
  return null;
}

/**
 * The client's IP address, canonical. Proxy headers are read only when the proxy is trusted:
 * otherwise any client could claim any address (and so any country and visitor id).
 * With a trusted proxy the left-most valid X-Forwarded-For entry is the original client, as the
 * proxy in front is expected to overwrite what the client sent; the socket address is then the proxy.
 */
export function clientIp(headers: Headers, socketIp: string | undefined, trustProxy: boolean): string {
  if (trustProxy) {
    const fromHeaders =
      normaliseIp(headers.get("cf-connecting-ip") ?? "") ??
      firstValid(headers.get("x-forwarded-for")) ??
      normaliseIp(headers.get("x-real-ip") ?? "");
    if (fromHeaders !== null) return fromHeaders;
  }
  return (socketIp === undefined ? null : normaliseIp(socketIp)) ?? UNKNOWN_IP;
}
