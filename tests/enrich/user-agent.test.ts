import { describe, expect, test } from "bun:test";
import { createUserAgentParser, parseUserAgent } from "../../src/ingest/enrich/user-agent.ts";

const CHROME_WINDOWS =
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

// [user agent, device, browser, os]: real strings as browsers send them.
const CASES: ReadonlyArray<readonly [string, string, string, string]> = [
  [CHROME_WINDOWS, "desktop", "Chrome", "Windows"],
  [`${CHROME_WINDOWS} Edg/124.0.2478.80`, "desktop", "Edge", "Windows"],
  [`${CHROME_WINDOWS} OPR/110.0.0.0`, "desktop", "Opera", "Windows"],
  [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
    "desktop",
    "Safari",
    "macOS",
  ],
  ["Mozilla/5.0 (Macintosh; Intel Mac OS X 14.4; rv:125.0) Gecko/20100101 Firefox/125.0", "desktop", "Firefox", "macOS"],
  ["Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0", "desktop", "Firefox", "Linux"],
  [
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "desktop",
    "Chrome",
    "Chrome OS",
  ],
  [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
    "mobile",
    "Safari",
    "iOS",
  ],
  [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1",
    "mobile",
    "Chrome",
    "iOS",
  ],
  [
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
    "tablet",
    "Safari",
    "iOS",
  ],
  [
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
    "mobile",
    "Chrome",
    "Android",
  ],
  [
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
    "mobile",
    "Samsung Internet",
    "Android",
  ],
  [
    "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "tablet",
    "Chrome",
    "Android",
  ],
  ["Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0", "mobile", "Firefox", "Android"],
  [
    "Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/4.0 Chrome/76.0.3809.146 TV Safari/537.36",
    "other",
    "Samsung Internet",
    "Tizen",
  ],
  ["Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "other", "Googlebot", "Unknown"],
];

describe("parseUserAgent", () => {
  test.each(CASES)("%s", (ua, device, browser, os) => {
    expect(parseUserAgent(ua)).toEqual({ device: device as never, browser, os });
  });

  test("an empty or blank user agent is all Unknown, device other", () => {
    for (const ua of ["", "   "]) {
      expect(parseUserAgent(ua)).toEqual({ device: "other", browser: "Unknown", os: "Unknown" });
    }
  });

  test("clients Bowser does not know get Unknown, not the UA's first token", () => {
    expect(parseUserAgent("MyApp/1.2 CFNetwork/1494.0.7 Darwin/23.4.0").browser).toBe("Unknown");
    expect(parseUserAgent("Mozilla/5.0").browser).toBe("Unknown");
    expect(parseUserAgent("curl/8.5.0")).toEqual({ device: "other", browser: "Unknown", os: "Unknown" });
  });

  test("the whole user agent an item may carry (1,024 characters) is parsed, nothing past it", () => {
    const edge = " Edg/124.0.2478.80";
    const within = `${CHROME_WINDOWS} ${"x".repeat(1024 - CHROME_WINDOWS.length - 1 - edge.length)}${edge}`;
    expect(within.length).toBe(1024);
    expect(within.indexOf("Edg/")).toBeGreaterThan(900);
    expect(parseUserAgent(within).browser).toBe("Edge");
    const past = `${CHROME_WINDOWS} ${"x".repeat(1100)}${edge}`;
    expect(parseUserAgent(past).browser).toBe("Chrome");
    expect(parseUserAgent(`${CHROME_WINDOWS}${edge}`).browser).toBe("Edge");
  });

  test("results are frozen, since cached results are shared between callers", () => {
    expect(Object.isFrozen(parseUserAgent(CHROME_WINDOWS))).toBe(true);
  });
});

describe("createUserAgentParser (LRU memo)", () => {
  const A = CHROME_WINDOWS;
  const B = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0";
  const C = "Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0";

  test("a repeated user agent is answered from the cache", () => {
    const parse = createUserAgentParser(2);
    expect(parse(A)).toBe(parse(A));
  });

  test("past the bound, the least recently used entry is evicted", () => {
    const parse = createUserAgentParser(2);
    const a = parse(A);
    const b = parse(B);
    expect(parse(A)).toBe(a); // A is now the most recently used
    parse(C); // evicts B, not A
    expect(parse(A)).toBe(a);
    const bAgain = parse(B);
    expect(bAgain).not.toBe(b);
    expect(bAgain).toEqual(b);
  });

  test("truncated user agents share one cache entry", () => {
    const parse = createUserAgentParser(10);
    const base = `${A} ${"y".repeat(1100)}`;
    expect(parse(`${base}one`)).toBe(parse(`${base}two`));
  });

  test("refuses a bound that is not a positive integer", () => {
    expect(() => createUserAgentParser(0)).toThrow(RangeError);
    expect(() => createUserAgentParser(1.5)).toThrow(RangeError);
  });
});
