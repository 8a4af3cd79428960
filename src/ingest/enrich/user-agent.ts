import Bowser from "bowser";
import { BoundedMap } from "../../memo.ts";
import { USER_AGENT_MAX } from "../schemas.ts";

/** The device classes ingest stores; the query routes' `device` filter takes exactly these. */
export const DEVICES = ["desktop", "mobile", "tablet", "other"] as const;
export type Device = (typeof DEVICES)[number];

export interface UserAgentInfo {
  readonly device: Device;
  readonly browser: string;
  readonly os: string;
}

/**
 * Longest user agent that is parsed: the whole of what an item's `user_agent` may hold (and what
 * is read of the `User-Agent` header), so a browser or crawler token anywhere in it counts. Real
 * ones are far shorter; the regexes cost per character (~60 µs for 512, ~120 for 1,024, linear),
 * and each distinct user agent is parsed once (the memo below).
 */
export const MAX_USER_AGENT_LENGTH = USER_AGENT_MAX;
const DEFAULT_CACHE_ENTRIES = 10_000;
const UNKNOWN = "Unknown";

// Bowser's names, shortened to what dashboards show. Names not listed are kept as Bowser spells them.
const BROWSER_NAMES: Readonly<Record<string, string>> = {
  "Microsoft Edge": "Edge",
  "Samsung Internet for Android": "Samsung Internet",
  "NAVER Whale Browser": "Whale",
  "Yandex Browser": "Yandex",
};

// Bowser falls back to the UA's first token for unknown clients ("Mozilla", "MyApp/1.2 CFNetwork");
// only names it actually detects are kept, so the browser column does not fill with noise.
const KNOWN_BROWSERS = new Set<string>(Object.values(Bowser.BROWSER_MAP));
const KNOWN_OSES = new Set<string>(Object.values(Bowser.OS_MAP));

const UNKNOWN_AGENT: UserAgentInfo = Object.freeze({ device: "other", browser: UNKNOWN, os: UNKNOWN });

function deviceOf(platformType: string | undefined): Device {
  if (platformType === "desktop" || platformType === "mobile" || platformType === "tablet") return platformType;
  return "other"; // tv, bot, or nothing detected
}

function parseUncached(ua: string): UserAgentInfo {
  const parsed = Bowser.parse(ua);
  const browserName = parsed.browser.name;
  const osName = parsed.os.name;
  const browser =
    browserName !== undefined && KNOWN_BROWSERS.has(browserName) && browserName !== "Generic"
      ? (BROWSER_NAMES[browserName] ?? browserName)
      : UNKNOWN;
  const os = osName !== undefined && KNOWN_OSES.has(osName) ? osName : UNKNOWN;
  return Object.freeze({ device: deviceOf(parsed.platform.type), browser, os });
}

/**
 * A user-agent parser memoised in a bounded LRU map: the same few hundred user agents make up
 * most traffic, and parsing one runs dozens of regexes.
 */
export function createUserAgentParser(maxEntries = DEFAULT_CACHE_ENTRIES): (ua: string) => UserAgentInfo {
  const cache = new BoundedMap<string, UserAgentInfo>(maxEntries);
  return function parseUserAgent(ua: string): UserAgentInfo {
    const key = ua.trim().slice(0, MAX_USER_AGENT_LENGTH);
    if (key === "") return UNKNOWN_AGENT;
    let info = cache.get(key);
    if (info === undefined) {
      info = parseUncached(key);
      cache.set(key, info);
    }
    return info;
  };
}

/** Device type, browser and OS of a user agent; 'Unknown' (device 'other') for what is not recognised. */
export const parseUserAgent: (ua: string) => UserAgentInfo = createUserAgentParser();
