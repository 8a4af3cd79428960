import { describe, expect, test } from "bun:test";
import { detectBot } from "../../src/ingest/enrich/bot.ts";

const BOTS = [
  "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
  "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
  "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
  "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36",
  "curl/8.5.0",
  "CURL/7.88.1",
  "Wget/1.21.4",
  "python-requests/2.31.0",
  "Go-http-client/1.1",
  "Go-http-client/2.0",
  "axios/1.6.8",
  "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
  "node-fetch",
  "okhttp/4.12.0",
  "undici",
  "PostmanRuntime/7.37.3",
  "Apache-HttpClient/4.5.14 (Java/17.0.2)",
  "Scrapy/2.11.0 (+https://scrapy.org)",
];

const BROWSERS = [
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0",
  // In-app browsers and Electron apps carry extra tokens but are people.
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/460.0.0.36.105;]",
  "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP1A.240405.002; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/124.0.6367.82 Mobile Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.36.140 Chrome/120.0.6099.291 Electron/28.2.3 Safari/537.36",
];

describe("detectBot", () => {
  test.each(BOTS)("bot: %s", (ua) => {
    expect(detectBot(ua)).toBe(true);
  });

  test.each(BROWSERS)("person: %s", (ua) => {
    expect(detectBot(ua)).toBe(false);
  });

  test("an empty, blank or missing user agent counts as a bot", () => {
    expect(detectBot("")).toBe(true);
    expect(detectBot("  \t")).toBe(true);
    expect(detectBot(undefined)).toBe(true);
    expect(detectBot(null)).toBe(true);
  });

  test("a library name further into a browser UA does not make it a bot", () => {
    const browser =
      "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
    expect(detectBot(`${browser} Bun/1.1.0`)).toBe(false);
    expect(detectBot("Bun/1.1.0")).toBe(true);
  });

  test("a crawler token anywhere in the first 1,024 characters (an item's user_agent limit) makes a bot", () => {
    const browser = BROWSERS[0]!;
    const token = " Googlebot/2.1";
    const within = `${browser} ${"x".repeat(1024 - browser.length - 1 - token.length)}${token}`;
    expect(within.length).toBe(1024);
    expect(detectBot(within)).toBe(true);
    expect(detectBot(`${browser} ${"x".repeat(1100)}${token}`)).toBe(false);
    expect(detectBot(`${browser} ${"x".repeat(600)}`)).toBe(false);
  });
});
