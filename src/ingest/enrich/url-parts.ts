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
 * A `path` filter written the way ingest stores paths: a page URL's path as WHATWG URL encodes it
 * (so "/ünï" is "/%C3%BCn%C3%AF"). Without this, `path=/ünï` silently matches nothing.
 */
export function normaliseFilterPath(value: string): string {
  // Appended to an origin rather than resolved against one: "//a" is then a path, not a host.
  const parsed = parseUrl(`http://filter.invalid${value.startsWith("/") ? "" : "/"}${value}`);
  return parsed === null ? value : parsed.pathname;
}

/**
 * A UTM parameter as `URLSearchParams` decodes it ("+" and %20 are spaces), kept whole and as
 * sent, like the session route's own `utm_*` fields: it was cut to 256 characters (a campaign could
 * then not be asked for by the value its links carry) and trimmed (" cpc " and "cpc" were one).
 */
function utmValue(params: URLSearchParams, name: string): string {
  return params.get(name) ?? "";
}

/**
 * Host, path and UTM parameters of a page URL; null unless it is an absolute http(s) URL. The path
 * is the URL's `pathname` as the WHATWG parser gives it, as a browser's `location.pathname` does:
 * percent-encoded (decoding could merge distinct paths or produce invalid text), dot segments
 * resolved, query and fragment dropped, so one page is one row in top pages. Nothing else is
 * changed: `/pricing` and `/pricing/` are two pages, as the server may answer them differently
 * (README, "Paths").
 */
export function parsePageUrl(url: string): PageUrlParts | null {
  const parsed = parseUrl(url);
  if (parsed === null || (parsed.protocol !== "http:" && parsed.protocol !== "https:")) return null;
  const params = parsed.searchParams;
  return {
    hostname: siteHost(parsed),
    path: parsed.pathname,
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
