// IP address syntax without `node:net`, so the ingest path also runs on edge runtimes.

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const HEXTET = /^[0-9a-f]{1,4}$/;

function ipv4Octets(text: string): number[] | null {
  // Leading zeros are refused: some parsers read "010" as octal, so its meaning is ambiguous.
  return IPV4.test(text) ? text.split(".").map(Number) : null;
}

function parseHextets(part: string): number[] | null {
  if (part === "") return [];
  const out: number[] = [];
  const groups = part.split(":");
  for (let i = 0; i < groups.length; i++) {
    const group = groups[i]!;
    if (i === groups.length - 1 && group.includes(".")) {
      const octets = ipv4Octets(group);
      if (!octets) return null;
      out.push((octets[0]! << 8) | octets[1]!, (octets[2]! << 8) | octets[3]!);
    } else if (HEXTET.test(group)) {
      out.push(parseInt(group, 16));
    } else {
      return null;
    }
  }
  return out;
}

/** The eight 16-bit groups of an IPv6 address, or null when the text is not one. */
export function ipv6Hextets(text: string): number[] | null {
  const lower = text.toLowerCase();
  const halves = lower.split("::");
  // An embedded IPv4 address may only close the address.
  if (halves.length > 2 || (halves.length === 2 && halves[0]!.includes("."))) return null;
  const head = parseHextets(halves[0]!);
  if (!head) return null;
  if (halves.length === 1) return head.length === 8 ? head : null;
  const tail = parseHextets(halves[1]!);
  // "::" stands for at least one zero group.
  if (!tail || head.length + tail.length > 7) return null;
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

/** Whether `text` is an IPv4 address (dotted, no leading zeros) or an IPv6 address (no zone id). */
export function isIpAddress(text: string): boolean {
  return ipv4Octets(text) !== null || (text.includes(":") && ipv6Hextets(text) !== null);
}

function formatIpv6(hextets: number[]): string {
  // RFC 5952: the longest run (≥ 2) of zero groups becomes "::", the first one on a tie.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (hextets[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && hextets[j] === 0) j++;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  const hex = hextets.map((h) => h.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLength).join(":")}`;
}

/** The address of "[v6]:port", "[v6]" or "v4:port" (some proxies append the port); null for a bad port. */
function stripPort(text: string): string | null {
  // One colon can only be IPv4 with a port; IPv6 has at least two.
  const match = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(text) ?? /^([\d.]+):(\d{1,5})$/.exec(text);
  if (!match) return text;
  return match[2] === undefined || Number(match[2]) <= 65_535 ? match[1]! : null;
}

/**
 * The canonical text of an IP address (dotted IPv4, RFC 5952 IPv6, IPv4-mapped IPv6 as IPv4),
 * or null when the text is not an address. Canonical so that one host always hashes the same.
 */
export function normaliseIp(input: string): string | null {
  const text = stripPort(input.trim());
  if (text === null || text.length === 0 || text.length > 45) return null;
  if (ipv4Octets(text)) return text;
  const hextets = ipv6Hextets(text);
  if (!hextets) return null;
  const mapped = hextets.slice(0, 6).every((h, i) => h === (i === 5 ? 0xffff : 0));
  if (mapped) {
    const [hi, lo] = [hextets[6]!, hextets[7]!];
    return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  }
  return formatIpv6(hextets);
}

// [first octet(s) as a 32-bit number, prefix length] of IPv4 ranges that never locate a person.
const IPV4_NON_PUBLIC: ReadonlyArray<readonly [string, number]> = [
  ["0.0.0.0", 8], // "this network"
  ["10.0.0.0", 8], // private
  ["100.64.0.0", 10], // carrier-grade NAT
  ["127.0.0.0", 8], // loopback
  ["169.254.0.0", 16], // link-local
  ["172.16.0.0", 12], // private
  ["192.0.0.0", 24], // IETF protocol assignments
  ["192.0.2.0", 24], // documentation
  ["192.168.0.0", 16], // private
  ["198.18.0.0", 15], // benchmarking
  ["198.51.100.0", 24], // documentation
  ["203.0.113.0", 24], // documentation
  ["224.0.0.0", 3], // multicast and reserved, up to 255.255.255.255
];

function ipv4Number(ip: string): number {
  return ip.split(".").reduce((n, octet) => n * 256 + Number(octet), 0);
}

const IPV4_RANGES = IPV4_NON_PUBLIC.map(([base, bits]) => {
  const size = 2 ** (32 - bits);
  const start = ipv4Number(base);
  return [start, start + size] as const;
});

/** False for private, loopback, link-local, documentation, multicast and other non-routable addresses. */
export function isPublicIp(ip: string): boolean {
  const canonical = normaliseIp(ip);
  if (canonical === null) return false;
  if (!canonical.includes(":")) {
    const n = ipv4Number(canonical);
    return !IPV4_RANGES.some(([start, end]) => n >= start && n < end);
  }
  const h = ipv6Hextets(canonical)!;
  const first = h[0]!;
  if (h.slice(0, 7).every((x) => x === 0)) return false; // :: and ::1
  if ((first & 0xfe00) === 0xfc00) return false; // fc00::/7 unique local
  if ((first & 0xffc0) === 0xfe80) return false; // fe80::/10 link-local
  if ((first & 0xff00) === 0xff00) return false; // ff00::/8 multicast
  if (first === 0x2001 && h[1] === 0x0db8) return false; // 2001:db8::/32 documentation
  if (first === 0x0064 && h[1] === 0xff9b && h[2] === 1) return false; // 64:ff9b:1::/48 local NAT64
  return true;
}
