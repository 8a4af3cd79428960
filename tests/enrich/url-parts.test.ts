import { describe, expect, test } from "bun:test";
import { parsePageUrl, referrerDomain } from "../../src/ingest/enrich/url-parts.ts";

describe("parsePageUrl", () => {
  test("splits host, path and UTM parameters", () => {
    const parts = parsePageUrl(
      "https://WWW.Shop.Example/pricing/?utm_source=newsletter&utm_medium=email&utm_campaign=spring+sale&utm_term=%20shoes%20&utm_content=hero#plans",
    );
    expect(parts).toEqual({
      hostname: "shop.example",
      path: "/pricing/",
      utm: { source: "newsletter", medium: "email", campaign: "spring sale", term: " shoes ", content: "hero" },
    });
  });

  test("missing UTM parameters are empty strings", () => {
    expect(parsePageUrl("https://shop.example/")?.utm).toEqual({ source: "", medium: "", campaign: "", term: "", content: "" });
  });

  test.each([
    ["https://shop.example", "/"],
    ["https://shop.example/", "/"],
    ["https://shop.example//", "//"], // location.pathname: nothing is trimmed or collapsed
    ["https://shop.example/pricing/", "/pricing/"],
    ["https://shop.example/a//b///c/", "/a//b///c/"],
    ["https://shop.example/a/b?x=1#y", "/a/b"],
    ["https://shop.example/caf%C3%A9", "/caf%C3%A9"],
    ["https://shop.example/café", "/caf%C3%A9"], // URL encodes it, as the browser would have sent it
    ["https://shop.example/a%2Fb", "/a%2Fb"], // an encoded slash is not a separator: not decoded
    ["https://shop.example/a/./b/../c", "/a/c"],
  ])("%s → path %s", (url, path) => {
    expect(parsePageUrl(url)?.path).toBe(path);
    expect(path).toBe(new URL(url).pathname); // what a browser's location.pathname says
  });

  test("hostname: lowercase, no leading www., no trailing dot, port dropped", () => {
    expect(parsePageUrl("http://www.EXAMPLE.com.:8080/x")?.hostname).toBe("example.com");
    expect(parsePageUrl("https://www2.example.com/")?.hostname).toBe("www2.example.com");
    expect(parsePageUrl("https://wwwexample.com/")?.hostname).toBe("wwwexample.com");
  });

  test("paths are kept whole: two pages that differ only after 1,024 characters stay two", () => {
    const a = parsePageUrl(`https://shop.example/${"a".repeat(2000)}`)!.path;
    expect(a).toBe(`/${"a".repeat(2000)}`);
    const b = parsePageUrl(`https://shop.example/${"a".repeat(1100)}${"b".repeat(400)}`)!.path;
    expect(b).toHaveLength(1501);
    expect(b.slice(0, 1024)).toBe(a.slice(0, 1024));
    expect(b).not.toBe(a.slice(0, 1501));
    // Non-ASCII text is kept as URL percent-encodes it, escapes whole.
    expect(parsePageUrl(`https://shop.example/${"ü".repeat(1500)}`)!.path).toBe(`/${"%C3%BC".repeat(1500)}`);
  });

  test("UTM values are kept whole and as URLSearchParams decodes them (not trimmed)", () => {
    const url = `https://shop.example/?utm_source=${"s".repeat(300)}&utm_medium=%20%20cpc%20&utm_campaign=a+b%2Bc`;
    const utm = parsePageUrl(url)!.utm;
    expect(utm.source).toBe("s".repeat(300));
    expect(utm.medium).toBe("  cpc ");
    expect(utm.campaign).toBe("a b+c");
    const params = new URL(url).searchParams;
    expect([utm.source, utm.medium, utm.campaign]).toEqual(["utm_source", "utm_medium", "utm_campaign"].map((n) => params.get(n) ?? ""));
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
