import { describe, expect, test } from "bun:test";
import { countryFromHeaders, createCountryLookup, normaliseCountry } from "../../src/ingest/enrich/country.ts";

describe("countryFromHeaders", () => {
  test("ignores the headers when the proxy is not trusted", () => {
    expect(countryFromHeaders(new Headers({ "CF-IPCountry": "DE" }), false)).toBeNull();
  });

  test("reads each edge's header, uppercased", () => {
    expect(countryFromHeaders(new Headers({ "CF-IPCountry": "de" }), true)).toBe("DE");
    expect(countryFromHeaders(new Headers({ "X-Vercel-IP-Country": "FR" }), true)).toBe("FR");
    expect(countryFromHeaders(new Headers({ "CloudFront-Viewer-Country": "JP" }), true)).toBe("JP");
  });

  test("Cloudflare's header wins when several are present", () => {
    const h = new Headers({ "X-Vercel-IP-Country": "FR", "CF-IPCountry": "DE" });
    expect(countryFromHeaders(h, true)).toBe("DE");
  });

  test("unknown markers and junk are null, and the next header is tried", () => {
    for (const value of ["XX", "T1", "ZZ", "QQ", "USA", "U", "", "1A", "EU"]) {
      expect(countryFromHeaders(new Headers({ "CF-IPCountry": value }), true)).toBeNull();
    }
    expect(countryFromHeaders(new Headers({ "CF-IPCountry": "XX", "CloudFront-Viewer-Country": "BR" }), true)).toBe("BR");
  });

  test("normaliseCountry accepts Kosovo's XK, which edges send", () => {
    expect(normaliseCountry("xk")).toBe("XK");
    expect(normaliseCountry(null)).toBeNull();
  });
});

describe("createCountryLookup (bundled database)", () => {
  const lookup = createCountryLookup();

  test.each([
    ["8.8.8.8", "US"],
    ["81.2.69.142", "GB"],
    ["193.0.6.139", "NL"], // RIPE NCC
    ["133.11.0.1", "JP"],
    ["2001:4860:4860::8888", "US"],
    ["2001:67c:2e8:22::c100:68b", "NL"], // RIPE NCC, IPv6
    ["::ffff:8.8.8.8", "US"], // IPv4-mapped, as dual-stack sockets report it
  ])("%s → %s", (ip, country) => {
    expect(lookup(ip)).toBe(country);
  });

  test.each(["10.0.0.1", "127.0.0.1", "192.168.1.10", "::1", "fd00::1", "203.0.113.5", "not-an-ip", ""])(
    "no country for %p",
    (ip) => {
      // 203.0.113.0/24 is a documentation range that the whois data files under APNIC (AU).
      expect(lookup(ip)).toBeNull();
    },
  );
});

describe("createCountryLookup loading", () => {
  test("loads lazily, reports a failed load once, and then answers null", () => {
    const errors: unknown[] = [];
    const lookup = createCountryLookup({
      databasePath: "/nonexistent/country.mmdb",
      onLoadError: (error) => errors.push(error),
    });
    expect(errors).toHaveLength(0);
    expect(lookup("10.0.0.1")).toBeNull(); // private: answered without the database
    expect(errors).toHaveLength(0);
    expect(lookup("8.8.8.8")).toBeNull();
    expect(lookup("1.1.1.1")).toBeNull();
    expect(errors).toHaveLength(1);
    expect(String(errors[0])).toContain("/nonexistent/country.mmdb");
  });
});
