export interface Utm {
  source: string;
  medium: string;
  campaign: string;
  term: string;
  content: string;
}

export interface PageUrlParts {
  hostname: string;
  path: string;
  utm: Utm;
}

function parseUrl(text: string): URL | null {
  // URL.parse would do, but it is newer than some runtimes this code targets.
  try {
    return new URL(text.trim());
  } catch {
    return null;
  }
}

/** Host as shown in reports: lowercase (URL already does that), no "www.", no DNS root dot. */
function siteHost(url: URL): string {
  return url.hostname.replace(/\.$/, "").replace(/^www\./, "");
}

/**
 * Repeated slashes and a trailing slash go; nothing else. Paths are kept whole (a page URL is at
 * most 2,048 characters): they were cut to 1,024, which stored two pages that differ after that as
 * one, and a `path` filter then listed both.
 */
function normalisePath(pathname: string): string {
  const path = pathname.replace(/\/{2,}/g, "/");
  return path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path;
}

/**
 * A `path` filter written the way ingest stores paths: a page URL's path as WHATWG URL encodes it
 * (so "/ünï" is "/%C3%BCn%C3%AF"), without a trailing slash or repeated slashes. Without this,
 * `path=/pricing/` or `path=/ünï` silently match nothing.
 */
export function normaliseFilterPath(value: string): string {
  // Appended to an origin rather than resolved against one: "//a" is then a path, not a host.
  const parsed = parseUrl(`http://filter.invalid${value.startsWith("/") ? "" : "/"}${value}`);
  return parsed === null ? value : normalisePath(parsed.pathname);
}

/**
 * A UTM parameter, decoded and trimmed, kept whole (it was cut to 256 characters: a campaign could
 * then not be asked for by the value its links carry).
 */
function utmValue(params: URLSearchParams, name: string): string {
  return (params.get(name) ?? "").trim();
}

/**
 * Host, normalised path and UTM parameters of a page URL; null unless it is an absolute http(s)
 * URL. The path keeps URL's percent-encoding (decoding could merge distinct paths or produce
 * invalid text) and drops query and fragment, so one page is one row in top pages.
 */
export function parsePageUrl(url: string): PageUrlParts | null {
  const parsed = parseUrl(url);
  if (parsed === null || (parsed.protocol !== "http:" && parsed.protocol !== "https:")) return null;
  const params = parsed.searchParams;
  return {
    hostname: siteHost(parsed),
    path: normalisePath(parsed.pathname),
    utm: {
      source: utmValue(params, "utm_source"),
      medium: utmValue(params, "utm_medium"),
      campaign: utmValue(params, "utm_campaign"),
      term: utmValue(params, "utm_term"),
      content: utmValue(params, "utm_content"),
    },
  };
}

/**
 * The referrer's host without a leading "www." (no port), or '' for an empty or unparsable
 * referrer. Any scheme with a host counts: Android apps refer as "android-app://com.google.android.gm".
 */
export function referrerDomain(referrer: string): string {
  if (referrer.trim() === "") return "";
  const parsed = parseUrl(referrer);
  return parsed === null ? "" : siteHost(parsed);
}
