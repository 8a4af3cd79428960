import { describe, expect, test } from "bun:test";
import { clientIp } from "../../src/ingest/enrich/client-ip.ts";

const SOCKET = "10.0.0.5";

function headers(init: Record<string, string>): Headers {
  return new Headers(init);
}

describe("clientIp without a trusted proxy", () => {
  test("ignores every proxy header and uses the socket address", () => {
    const h = headers({ "CF-Connecting-IP": "1.1.1.1", "X-Forwarded-For": "2.2.2.2", "X-Real-IP": "3.3.3.3" });
    expect(clientIp(h, SOCKET, false)).toBe(SOCKET);
  });

  test("falls back to 0.0.0.0 without a usable socket address", () => {
    expect(clientIp(headers({ "X-Forwarded-For": "2.2.2.2" }), undefined, false)).toBe("0.0.0.0");
    expect(clientIp(headers({}), "garbage", false)).toBe("0.0.0.0");
  });

  test("canonicalises the socket address (dual-stack sockets report IPv4-mapped IPv6)", () => {
    expect(clientIp(headers({}), "::ffff:127.0.0.1", false)).toBe("127.0.0.1");
    expect(clientIp(headers({}), "2001:DB8:0:0::1", false)).toBe("2001:db8::1");
  });
});

describe("clientIp behind a trusted proxy", () => {
  test("CF-Connecting-IP wins over the other headers", () => {
    const h = headers({ "CF-Connecting-IP": "1.1.1.1", "X-Forwarded-For": "2.2.2.2", "X-Real-IP": "3.3.3.3" });
    expect(clientIp(h, SOCKET, true)).toBe("1.1.1.1");
  });

  test("X-Forwarded-For: the left-most valid entry, skipping garbage", () => {
    expect(clientIp(headers({ "X-Forwarded-For": "2.2.2.2, 10.0.0.1, 10.0.0.2" }), SOCKET, true)).toBe("2.2.2.2");
    expect(clientIp(headers({ "X-Forwarded-For": "unknown, , 2.2.2.2, 4.4.4.4" }), SOCKET, true)).toBe("2.2.2.2");
  });

  test("X-Forwarded-For entries with ports or brackets", () => {
    expect(clientIp(headers({ "X-Forwarded-For": "203.0.113.9:52011" }), SOCKET, true)).toBe("203.0.113.9");
    expect(clientIp(headers({ "X-Forwarded-For": "[2001:db8::7]:443, 2.2.2.2" }), SOCKET, true)).toBe("2001:db8::7");
  });

  test("several X-Forwarded-For headers are read in order", () => {
    const h = new Headers();
    h.append("X-Forwarded-For", "garbage");
    h.append("X-Forwarded-For", "5.5.5.5");
    expect(clientIp(h, SOCKET, true)).toBe("5.5.5.5");
  });

  test("a garbage CF-Connecting-IP falls through to X-Forwarded-For", () => {
    const h = headers({ "CF-Connecting-IP": "<script>", "X-Forwarded-For": "2.2.2.2" });
    expect(clientIp(h, SOCKET, true)).toBe("2.2.2.2");
  });

  test("X-Real-IP when X-Forwarded-For has nothing valid", () => {
    const h = headers({ "X-Forwarded-For": "unknown", "X-Real-IP": "2001:db8::9" });
    expect(clientIp(h, SOCKET, true)).toBe("2001:db8::9");
  });

  test("headers with nothing valid leave the socket address", () => {
    const h = headers({ "CF-Connecting-IP": "999.1.1.1", "X-Forwarded-For": "a, b", "X-Real-IP": "localhost" });
    expect(clientIp(h, SOCKET, true)).toBe(SOCKET);
    expect(clientIp(headers({}), undefined, true)).toBe("0.0.0.0");
  });
});
