import { describe, expect, test } from "bun:test";
import { parsePageUrl, referrerDomain } from "../../src/ingest/enrich/url-parts.ts";

describe("parsePageUrl", () => {
  test("splits host, path and UTM parameters", () => {
    const parts = parsePageUrl(
      "https://WWW.Shop.Example/pricing/?utm_source=newsletter&utm_medium=email&utm_campaign=spring+sale&utm_term=%20shoes%20&utm_content=hero#plans",
    );
    expect(parts).toEqual({
      hostname: "shop.example",
      path: "/pricing",
      utm: { source: "newsletter", medium: "email", campaign: "spring sale", term: "shoes", content: "hero" },
    });
  });

  test("missing UTM parameters are empty strings", () => {
    expect(parsePageUrl("https://shop.example/")?.utm).toEqual({ source: "", medium: "", campaign: "", term: "", content: "" });
  });

  test.each([
    ["https://shop.example", "/"],
    ["https://shop.example/", "/"],
    ["https://shop.example//", "/"],
    ["https://shop.example/a//b///c/", "/a/b/c"],
    ["https://shop.example/a/b?x=1#y", "/a/b"],
    ["https://shop.example/caf%C3%A9", "/caf%C3%A9"],
    ["https://shop.example/café", "/caf%C3%A9"], // URL encodes it, as the browser would have sent it
    ["https://shop.example/a%2Fb", "/a%2Fb"], // an encoded slash is not a separator: not decoded
    ["https://shop.example/a/./b/../c", "/a/c"],
  ])("%s → path %s", (url, path) => {
    expect(parsePageUrl(url)?.path).toBe(path);
  });

  test("hostname: lowercase, no leading www., no trailing dot, port dropped", () => {
    expect(parsePageUrl("http://www.EXAMPLE.com.:8080/x")?.hostname).toBe("example.com");
    expect(parsePageUrl("https://www2.example.com/")?.hostname).toBe("www2.example.com");
    expect(parsePageUrl("https://wwwexample.com/")?.hostname).toBe("wwwexample.com");
  });

  test("paths are capped at 1024 characters without cutting a percent escape", () => {
    const long = parsePageUrl(`https://shop.example/${"a".repeat(2000)}`)!.path;
    expect(long).toHaveLength(1024);
    // "/" + 1021 × "a" puts an escape's "%E" at 1023–1024: it must go, not stay half.
    const cut = parsePageUrl(`https://shop.example/${"a".repeat(1021)}%E2%82%AC`)!.path;
    expect(cut).toBe(`/${"a".repeat(1021)}`);
  });

  test("UTM values are trimmed and capped at 256 characters", () => {
    const utm = parsePageUrl(`https://shop.example/?utm_source=${"s".repeat(300)}&utm_medium=%20%20cpc%20`)!.utm;
    expect(utm.source).toBe("s".repeat(256));
    expect(utm.medium).toBe("cpc");
  });

  test.each(["", "not a url", "/relative/path", "ftp://files.example/x", "javascript:alert(1)", "mailto:a@b.example"])(
    "rejects %p",
    (url) => {
      expect(parsePageUrl(url)).toBeNull();
    },
  );
});

describe("referrerDomain", () => {
  test.each([
    ["https://www.google.com/search?q=x", "google.com"],
    ["https://News.YCombinator.com/item?id=1", "news.ycombinator.com"],
    ["http://localhost:3000/page", "localhost"],
    ["android-app://com.google.android.gm/", "com.google.android.gm"],
    ["https://www.bing.com.", "bing.com"],
    ["", ""],
    ["   ", ""],
    ["not a url", ""],
    ["about:blank", ""],
  ])("%p → %p", (referrer, domain) => {
    expect(referrerDomain(referrer)).toBe(domain);
  });
});
