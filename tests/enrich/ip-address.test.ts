import { describe, expect, test } from "bun:test";
import { ipv6Hextets, isPublicIp, normaliseIp } from "../../src/ingest/enrich/ip-address.ts";

describe("normaliseIp", () => {
  test.each([
    ["8.8.8.8", "8.8.8.8"],
    [" 8.8.8.8 ", "8.8.8.8"],
    ["255.255.255.255", "255.255.255.255"],
    ["0.0.0.0", "0.0.0.0"],
    ["203.0.113.7:51234", "203.0.113.7"],
    ["2001:DB8::1", "2001:db8::1"],
    ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // first of two equal zero runs is compressed
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // a single zero group is not compressed
    ["::", "::"],
    ["::1", "::1"],
    ["[2001:db8::1]:443", "2001:db8::1"],
    ["[::1]", "::1"],
    ["::ffff:192.0.2.128", "192.0.2.128"],
    ["::FFFF:c000:0280", "192.0.2.128"],
    ["64:ff9b::192.0.2.33", "64:ff9b::c000:221"],
  ])("%s → %s", (input, expected) => {
    expect(normaliseIp(input)).toBe(expected);
  });

  test.each([
    "",
    "unknown",
    "256.1.1.1",
    "1.2.3",
    "1.2.3.4.5",
    "01.2.3.4",
    "1.2.3.-4",
    "1.2.3.4:99999",
    "2001:db8::1::1",
    "2001:db8:::1",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7::8", // "::" must stand for at least one group
    ":1:2:3:4:5:6:7",
    "12345::1",
    "g::1",
    "fe80::1%eth0",
    "1.2.3.4::1",
    "::ffff:1.2.3.256",
    "example.com",
    "1".repeat(50),
  ])("rejects %p", (input) => {
    expect(normaliseIp(input)).toBeNull();
  });

  test("ipv6Hextets expands '::' to the missing zero groups", () => {
    expect(ipv6Hextets("1::8")).toEqual([1, 0, 0, 0, 0, 0, 0, 8]);
    expect(ipv6Hextets("::2:3:4:5:6:7:8")).toEqual([0, 2, 3, 4, 5, 6, 7, 8]);
  });
});

describe("isPublicIp", () => {
  test.each(["8.8.8.8", "1.1.1.1", "81.2.69.142", "100.63.255.255", "172.32.0.1", "2001:4860:4860::8888", "2a00:1450::1"])(
    "public: %s",
    (ip) => {
      expect(isPublicIp(ip)).toBe(true);
    },
  );

  test.each([
    "10.1.2.3",
    "127.0.0.1",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "192.0.2.1",
    "198.51.100.9",
    "203.0.113.5",
    "198.19.0.1",
    "224.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fd12:3456::1",
    "fe80::1",
    "ff02::1",
    "2001:db8::1",
    "::ffff:10.0.0.1",
    "not an ip",
  ])("not public: %s", (ip) => {
    expect(isPublicIp(ip)).toBe(false);
  });
});
