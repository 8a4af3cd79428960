// Random but realistic traffic for the end-to-end property test: people who visit two or three
// sites over the last four weeks from desktops, phones and tablets, in many countries, through
// search engines, social links and UTM campaigns; page views, custom events (some converting),
// funnel steps in and out of order, client errors and Web Vitals; client session ids for some
// visits and server-side sessions for the rest, with gaps just under, exactly at and over the
// 30-minute idle limit, across UTC and local midnights and across a DST change. A few bots too.
//
// Every item says what the service must derive from it (path, UTM, referrer domain, device,
// browser, OS), written down here by construction rather than computed with the service's code.
import type { Rng } from "../helpers/seed.ts";

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;
export const IDLE = 30 * MINUTE;

export interface UserAgent {
  ua: string;
  device: "desktop" | "mobile" | "tablet";
  browser: string;
  os: string;
}

/** Real browsers, with what a dashboard shows for them. */
export const USER_AGENTS: readonly UserAgent[] = [
  { ua: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", device: "desktop", browser: "Chrome", os: "Windows" },
  { ua: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", device: "desktop", browser: "Edge", os: "Windows" },
  { ua: "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", device: "desktop", browser: "Firefox", os: "Windows" },
  { ua: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 OPR/115.0.0.0", device: "desktop", browser: "Opera", os: "Windows" },
  { ua: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15", device: "desktop", browser: "Safari", os: "macOS" },
  { ua: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", device: "desktop", browser: "Chrome", os: "macOS" },
  { ua: "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0", device: "desktop", browser: "Firefox", os: "Linux" },
  { ua: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36", device: "desktop", browser: "Chrome", os: "Linux" },
  { ua: "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", device: "desktop", browser: "Chrome", os: "Chrome OS" },
  { ua: "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", device: "mobile", browser: "Safari", os: "iOS" },
  { ua: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1", device: "mobile", browser: "Chrome", os: "iOS" },
  { ua: "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36", device: "mobile", browser: "Chrome", os: "Android" },
  { ua: "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36", device: "mobile", browser: "Samsung Internet", os: "Android" },
  { ua: "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0", device: "mobile", browser: "Firefox", os: "Android" },
  { ua: "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1", device: "tablet", browser: "Safari", os: "iOS" },
  { ua: "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", device: "tablet", browser: "Chrome", os: "Android" },
];

/** Crawlers, headless browsers and scripts: every item they send is dropped as `bot`. */
export const BOT_USER_AGENTS: readonly string[] = [
  "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
  "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
  "curl/8.5.0",
  "python-requests/2.32.3",
];

/**
 * Public addresses in many countries (their countries are read back from the service by a probe,
 * not assumed), one from the documentation range (no country), and one IPv6 address.
 */
export const IPS: readonly string[] = [
  "8.8.8.8", "142.250.1.1", "24.48.0.1", "81.2.69.142", "212.58.244.20", "193.0.6.139", "80.80.80.80",
  "85.214.132.117", "217.160.0.1", "62.4.1.1", "195.8.215.68", "200.160.2.3", "177.1.1.1", "202.12.27.33",
  "133.242.1.1", "14.139.56.1", "49.44.1.1", "196.25.1.1", "41.203.64.1", "102.1.1.1", "190.210.1.1",
  "1.1.1.1", "110.33.1.1", "5.255.255.5", "2001:4860:4860::8888", "2a00:1450:4001::1", "203.0.113.50",
];

export interface Referrer {
  url: string;
  /** Host without a leading www. */
  domain: string;
}

const EXTERNAL_REFERRERS: readonly Referrer[] = [
  { url: "https://www.google.com/search?q=analytics", domain: "google.com" },
  { url: "https://www.google.com/", domain: "google.com" },
  { url: "https://news.ycombinator.com/item?id=424242", domain: "news.ycombinator.com" },
  { url: "https://t.co/AbCdEf123", domain: "t.co" },
  { url: "https://duckduckgo.com/", domain: "duckduckgo.com" },
  { url: "https://m.facebook.com/story.php?id=9", domain: "m.facebook.com" },
  { url: "android-app://com.google.android.gm", domain: "com.google.android.gm" },
  { url: "https://www.reddit.com/r/webdev/comments/x1/", domain: "reddit.com" },
];

export interface Campaign {
  /** The query string that carries it (as sent). */
  query: string;
  source: string;
  medium: string;
  campaign: string;
}

const CAMPAIGNS: readonly Campaign[] = [
  { query: "utm_source=newsletter&utm_medium=email&utm_campaign=black_friday", source: "newsletter", medium: "email", campaign: "black_friday" },
  { query: "utm_source=newsletter&utm_medium=email&utm_campaign=weekly", source: "newsletter", medium: "email", campaign: "weekly" },
  { query: "utm_source=google&utm_medium=cpc&utm_campaign=brand&utm_term=shop", source: "google", medium: "cpc", campaign: "brand" },
  { query: "utm_source=google&utm_medium=cpc", source: "google", medium: "cpc", campaign: "" },
  { query: "utm_source=twitter", source: "twitter", medium: "", campaign: "" },
  { query: "ref=x&utm_campaign=spring%20sale&utm_source=partner%2Bblog&utm_medium=referral", source: "partner+blog", medium: "referral", campaign: "spring sale" },
];

export type ItemType = "session" | "pageview" | "event" | "funnel" | "error" | "vitals";
export type Vital = "lcp" | "inp" | "cls" | "fcp" | "ttfb";
export type PropertyValue = string | number | boolean | null;

export interface GenItem {
  /** Unique index in generation order. */
  n: number;
  service: string;
  /** The generated person (a debugging aid; the model never uses it). */
  person: string;
  type: ItemType;
  time: number;
  anonymousId?: string;
  ip: string;
  ua: string;
  sessionId?: string;
  userId?: string;
  /** Sent by the client; items without one get the id the service answers with. */
  eventId?: string;
  url?: string;
  referrer?: string;
  /** What the service derives, known by construction. */
  path: string;
  utm: { source: string; medium: string; campaign: string };
  /** The referrer as a session stores it (as sent, an internal link's too; '' when none) and its domain. */
  sessionReferrer: string;
  referrerDomain: string;
  title?: string;
  name?: string;
  conversion?: boolean;
  properties?: Record<string, PropertyValue>;
  funnel?: string;
  step?: number;
  stepName?: string;
  message?: string;
  stack?: string;
  source?: string;
  /** Errors of one group must share a fingerprint (they differ in numbers and ids only). */
  errorGroup?: string;
  vitals?: Partial<Record<Vital, number>>;
  /** Explicit UTM fields of a session item (they win over the URL's). */
  explicitUtm?: { utm_source?: string; utm_medium?: string; utm_campaign?: string };
  screen?: { width: number; height: number };
  language?: string;
  timezone?: string;
  /** How it is sent. */
  route: "batch" | "session" | "pageview" | "event";
  /** Items the service must drop, and why. */
  drop?: "bot" | "invalid";
}

interface SiteSpec {
  key: string;
  hosts: readonly string[];
  paths: readonly string[];
  events: ReadonlyArray<{ name: string; conversion?: boolean }>;
  funnels: ReadonlyArray<{ name: string; steps: readonly string[] }>;
  people: number;
}

const SITES: readonly SiteSpec[] = [
  {
    key: "shop",
    hosts: ["https://www.shop.example", "https://shop.example"],
    paths: ["/", "/products", "/products/42", "/products/7", "/cart", "/checkout", "/pricing", "/search", "/ünï"],
    events: [{ name: "add_to_cart" }, { name: "purchase", conversion: true }, { name: "search" }, { name: "newsletter_subscribe", conversion: true }, { name: "share" }],
    funnels: [{ name: "checkout", steps: ["cart", "shipping", "payment", "done"] }],
    people: 95,
  },
  {
    key: "blog",
    hosts: ["https://blog.example"],
    paths: ["/", "/posts/hello-world", "/posts/dst-is-hard", "/posts/why-utc", "/about", "/tags/time"],
    events: [{ name: "subscribe", conversion: true }, { name: "share" }, { name: "comment" }, { name: "video_play" }],
    funnels: [{ name: "newsletter", steps: ["form_view", "email_entered", "confirmed"] }],
    people: 70,
  },
  {
    key: "app",
    hosts: ["https://app.example"],
    paths: ["/login", "/dashboard", "/settings", "/reports/42", "/billing", "/"],
    events: [{ name: "signup", conversion: true }, { name: "login" }, { name: "export_csv" }, { name: "invite_sent" }, { name: "upgrade", conversion: true }],
    funnels: [
      { name: "onboarding", steps: ["welcome", "profile", "team", "first_report"] },
      { name: "upgrade", steps: ["plans", "checkout", "paid"] },
    ],
    people: 60,
  },
];

/** Step sequences a visit walks through: in order, dropping off, out of order, restarting. */
const FUNNEL_PATTERNS: ReadonlyArray<readonly number[]> = [
  [1, 2, 3, 4], [1, 2, 3, 4], [1, 2], [1], [1, 2, 3], [1, 3, 2], [2, 1, 2, 3], [1, 1, 2], [1, 2, 1, 2, 3, 4], [3, 1, 2], [1, 2, 2, 3],
];

/** Error templates: each group varies only in numbers, ids and line numbers. */
const ERROR_GROUPS: ReadonlyArray<{ group: string; make: (r: Rng, host: string) => { message: string; stack?: string; source?: string } }> = [
  {
    group: "undefined-id",
    make: (r, host) => ({
      message: "TypeError: Cannot read properties of undefined (reading 'id')",
      stack: `TypeError: Cannot read properties of undefined (reading 'id')\n    at renderCart (${host}/assets/app.3f9a2c1b.js:1:${r.int(100, 99999)})\n    at main (${host}/assets/app.3f9a2c1b.js:1:${r.int(1, 99)})`,
    }),
  },
  { group: "fetch-item", make: (r, host) => ({ message: `Failed to fetch /api/items/${r.int(1, 5000)}`, source: `${host}/assets/api.js` }) },
  { group: "gtag", make: (r, host) => ({ message: "ReferenceError: gtag is not defined", stack: `ReferenceError: gtag is not defined\n    at ${host}/analytics.js:${r.int(1, 400)}:${r.int(1, 80)}` }) },
  { group: "timeout", make: (r) => ({ message: `Request ${r.uuid()} timed out after ${r.int(1000, 30000)}ms` }) },
  {
    group: "boom",
    make: (r, host) => ({ message: r.chance(0.5) ? "Uncaught Error: boom" : "Error: boom", stack: `explode@${host}/assets/vendor.js:${r.int(1, 9)}:${r.int(1, 500)}\n@${host}/assets/vendor.js:1:1` }),
  },
];

export interface Traffic {
  /** Every generated item (bots and invalid ones included), in generation order. */
  items: GenItem[];
  /** What is sent, in order: one request each. */
  requests: Request[];
  services: Record<string, string>;
}

export type Request =
  | { kind: "batch"; service: string; items: GenItem[] }
  | { kind: "single"; service: string; item: GenItem };

export interface TrafficOptions {
  now: number;
  /** Oldest item time. */
  start: number;
  /** Instants worth crowding: midnights in the tested zones, a DST change, range bounds. */
  critical: readonly number[];
  /** Suffix that makes the service ids unique in the test run. */
  suffix: string;
  /** A DST change in the window, if there is one: someone browses through it. */
  dstChange?: number;
  /**
   * Items arrive late: each person's items are sent in the order of their time plus a random
   * delay of up to this many ms, so from request to request a person's items come out of time
   * order (a late item can fall between two sessions already stored and join them). Without it
   * each person's items stay in time order from request to request.
   */
  lateMs?: number;
}

export function generateTraffic(r: Rng, opts: TrafficOptions): Traffic {
  const items: GenItem[] = [];
  const services: Record<string, string> = {};
  const queues = new Map<string, GenItem[][]>();
  let n = 0;
  let clientSessions = 0;

  for (const site of SITES) {
    const service = `e2e-${site.key}-${opts.suffix}`;
    services[site.key] = service;
    const used = new Set<number>();
    /** Item times are unique within a service (ties only where made on purpose). */
    const unique = (t: number) => {
      while (used.has(t)) t += 1;
      used.add(t);
      return t;
    };
    const personQueues: GenItem[][] = [];
    queues.set(service, personQueues);
    const pairs = new Set<string>();

    const base = (person: string, type: ItemType, time: number, who: { anon?: string; ip: string; ua: string }): GenItem => ({
      n: n++, service, person, type, time, anonymousId: who.anon, ip: who.ip, ua: who.ua, path: "",
      utm: { source: "", medium: "", campaign: "" }, sessionReferrer: "", referrerDomain: "", route: "batch",
    });
    const setUrl = (it: GenItem, host: string, path: string, campaign?: Campaign, referrer?: Referrer | "self" | "") => {
      it.url = `${host}${encodeURI(path)}${campaign ? `?${campaign.query}` : r.chance(0.1) ? "?ref=nav#top" : ""}`;
      it.path = encodeURI(path);
      if (campaign) it.utm = { source: campaign.source, medium: campaign.medium, campaign: campaign.campaign };
      if (referrer === "self") {
        // An internal link: API.md's session referrer is the URL as sent, its domain the host without www.
        const own = r.pick(site.hosts);
        it.referrer = `${own}${encodeURI(r.pick(site.paths))}`;
        it.sessionReferrer = it.referrer;
        it.referrerDomain = new URL(own).hostname.replace(/^www\./, "");
      } else if (referrer) {
        it.referrer = referrer.url;
        it.sessionReferrer = referrer.url;
        it.referrerDomain = referrer.domain;
      }
    };

    for (let p = 0; p < site.people + 3; p++) {
      const person = `${site.key}-p${p}`;
      const bot = p >= site.people;
      // The first three people of a site cross a UTC midnight on purpose, in a visit with short
      // gaps: p0 hashed (its server-side session ends there: a new day is a new visitor), p1
      // hashed with a client session id (one session), p2 with an anonymous_id (one session).
      const acrossMidnight = p < 3;
      const acrossDst = p === 3 && opts.dstChange !== undefined;
      const anon = p === 2 || (p > 2 && !bot && r.chance(0.3)) ? `anon-${r.uuid()}` : undefined;
      let device: { ip: string; ua: string };
      do {
        device = { ip: r.pick(IPS), ua: bot ? r.pick(BOT_USER_AGENTS) : r.pick(USER_AGENTS).ua };
      } while (!anon && pairs.has(`${device.ip} ${device.ua}`));
      if (!anon) pairs.add(`${device.ip} ${device.ua}`);
      const otherDevice = anon && r.chance(0.35) ? { ip: r.pick(IPS), ua: r.pick(USER_AGENTS).ua } : undefined;
      const userId = !bot && r.chance(0.35) ? `user-${site.key}-${p}` : undefined;
      const loginVisit = r.int(0, 3);
      const timeline: GenItem[] = [];

      // The last two people are on the site right now: their items reach up to 4 minutes ahead of
      // the test's clock (a secret key may send 5 minutes ahead).
      const live = !bot && p >= site.people - 2;
      const latest = live ? opts.now + 4 * MINUTE : opts.now - MINUTE;
      const visits = live ? 1 : bot ? r.int(1, 2) : r.weighted([[1, 30], [2, 25], [3, 18], [4, 12], [5, 8], [7, 5], [10, 2]] as const);
      let t = r.chance(0.3) && opts.critical.length > 0
        ? r.pick(opts.critical) + (r.chance(0.15) ? 0 : r.int(-40 * MINUTE, 20 * MINUTE))
        : opts.start + HOUR + Math.floor(r.next() * (opts.now - opts.start - 3 * HOUR));
      t = Math.max(opts.start + HOUR, Math.min(t, opts.now - 2 * HOUR));
      if (live) t = opts.now - r.int(5 * MINUTE, 15 * MINUTE);
      // (8 to 12 items 2 to 5 minutes apart from at most 12 minutes before: they get across.)
      if (acrossMidnight) t = Math.floor((opts.now - r.int(2, 25) * DAY) / DAY) * DAY - r.int(2 * MINUTE, 12 * MINUTE);
      if (acrossDst) t = opts.dstChange! - r.int(2 * MINUTE, 12 * MINUTE);

      for (let v = 0; v < visits && t < opts.now - 10 * MINUTE; v++) {
        const forced = (acrossMidnight || acrossDst) && v === 0;
        const clientSession = (!bot && !forced && r.chance(0.18)) || (forced && p === 1) ? `cs-${site.key}-${++clientSessions}-${r.int(1000, 9999)}` : undefined;
        const who = { anon, ...(otherDevice && r.chance(0.4) ? otherDevice : device) };
        const host = r.pick(site.hosts);
        const loggedIn = userId !== undefined && v >= loginVisit;
        const size = forced ? r.int(8, 12) : r.chance(0.22) ? 1 : r.int(2, 12);
        const pattern = r.pick(FUNNEL_PATTERNS);
        const funnel = r.pick(site.funnels);
        let step = 0;
        const campaign = r.chance(0.3) ? r.pick(CAMPAIGNS) : undefined;
        const entryRef: Referrer | "self" | "" = r.weighted<Referrer | "self" | "">([[r.pick(EXTERNAL_REFERRERS), 45], ["", 40], ["self", 15]]);
        let switchedIp = false;

        for (let i = 0; i < (live ? 40 : size) && t < latest; i++) {
          const first = i === 0;
          const type: ItemType = first
            ? r.weighted<ItemType>([["pageview", 70], ["session", 15], ["event", 8], ["vitals", 2], ["error", 2], ["funnel", 3]])
            : r.weighted<ItemType>([["pageview", 45], ["event", 20], ["funnel", 12], ["error", 8], ["vitals", 15]]);
          if (anon && !first && !switchedIp && r.chance(0.04)) {
            who.ip = r.pick(IPS); // a phone changing networks mid-visit
            switchedIp = true;
          }
          const it = base(person, type, unique(t), who);
          it.sessionId = clientSession;
          if (loggedIn && (i > 0 || r.chance(0.5))) it.userId = userId;
          if (r.chance(0.85)) it.eventId = r.uuid();
          const page = r.pick(site.paths);
          const ref = first ? entryRef : r.chance(0.6) ? "self" : "";
          switch (type) {
            case "session":
              setUrl(it, host, page, campaign, ref);
              if (r.chance(0.3)) it.explicitUtm = { utm_source: "app_store", utm_medium: r.chance(0.5) ? "organic" : undefined };
              it.screen = { width: r.pick([390, 1440, 1920, 820]), height: r.pick([844, 900, 1080, 1180]) };
              it.language = r.pick(["en-US", "de-DE", "pt-BR", "hi-IN", "ja-JP"]);
              it.timezone = r.pick(["America/New_York", "Europe/Berlin", "Asia/Kolkata", "UTC"]);
              break;
            case "pageview":
              setUrl(it, host, page, first ? campaign : undefined, ref);
              if (r.chance(0.7)) it.title = `${page} | ${site.key}`;
              break;
            case "event": {
              const ev = r.pick(site.events);
              it.name = ev.name;
              if (ev.conversion && r.chance(0.75)) it.conversion = true;
              else if (r.chance(0.1)) it.conversion = false;
              // Back-end events carry no page; browser events do.
              if (r.chance(0.6)) setUrl(it, host, page, first ? campaign : undefined, ref);
              else if (first && ref !== "self" && ref !== "") {
                it.referrer = ref.url;
                it.sessionReferrer = ref.url;
                it.referrerDomain = ref.domain;
              }
              if (r.chance(0.7)) {
                it.properties = { plan: r.pick(["free", "pro", "team"]), qty: r.int(1, 5), price: r.pick([9.99, 0.5, 1200, -3.25]), gift: r.chance(0.5), note: r.chance(0.3) ? null : "ünïcode ✓ 'q' \"dq\"" };
              }
              break;
            }
            case "funnel": {
              const s = pattern[step++];
              it.funnel = funnel.name;
              it.step = s === undefined ? r.int(1, funnel.steps.length) : Math.min(s, funnel.steps.length);
              if (r.chance(0.8)) it.stepName = funnel.steps[it.step - 1];
              if (r.chance(0.7)) setUrl(it, host, page, first ? campaign : undefined, ref);
              break;
            }
            case "error": {
              const g = r.pick(ERROR_GROUPS);
              const e = g.make(r, host);
              it.errorGroup = g.group;
              it.message = e.message;
              if (e.stack) it.stack = e.stack;
              if (e.source) it.source = e.source;
              if (r.chance(0.8)) setUrl(it, host, page, first ? campaign : undefined, ref);
              break;
            }
            case "vitals": {
              setUrl(it, host, page, first ? campaign : undefined, ref);
              const vitals: Partial<Record<Vital, number>> = {};
              const edge = <T>(values: readonly T[]) => r.pick(values);
              if (r.chance(0.8)) vitals.lcp = r.chance(0.15) ? edge([2500, 4000, 2501, 4001]) : r.int(400, 7000);
              if (r.chance(0.6)) vitals.inp = r.chance(0.15) ? edge([200, 500, 201]) : r.int(16, 900);
              if (r.chance(0.7)) vitals.cls = r.chance(0.15) ? edge([0.1, 0.25, 0]) : Math.round(r.next() * 600) / 1000;
              if (r.chance(0.7)) vitals.fcp = r.chance(0.1) ? edge([1800, 3000]) : r.int(300, 4500);
              if (r.chance(0.7)) vitals.ttfb = r.chance(0.1) ? edge([800, 1800]) : Math.round(r.next() * 250000) / 100;
              if (Object.keys(vitals).length === 0) vitals.lcp = r.int(400, 7000);
              it.vitals = vitals;
              break;
            }
          }
          if (bot) it.drop = "bot";
          if (!bot && (type === "session" || type === "pageview" || type === "event") && r.chance(0.035)) it.route = type;
          timeline.push(it);

          // The gap to the next item of this visit.
          const tie = !first && type === "funnel" && r.chance(0.12);
          if (tie && i + 1 < size) {
            // The next item shares this time exactly: a funnel step sent with it (ties are part of windowFunnel's rules).
            const twin = base(person, "funnel", it.time, who);
            Object.assign(twin, { sessionId: it.sessionId, userId: it.userId, funnel: it.funnel, step: pattern[step++] ?? 2, url: it.url, path: it.path, eventId: r.uuid() });
            twin.step = Math.min(twin.step!, funnel.steps.length);
            if (it.stepName !== undefined) twin.stepName = funnel.steps[twin.step! - 1];
            if (bot) twin.drop = "bot";
            timeline.push(twin);
            i++;
          }
          const gap = r.weighted<number>([
            [r.int(1, 2000), 6],
            [r.int(2_000, 5 * MINUTE), 55],
            [r.int(5 * MINUTE, 25 * MINUTE), 25],
            [r.int(25 * MINUTE, IDLE - 1), 8],
            [IDLE - 1, 3],
            // Client sessions hold together over long gaps; server-side ones split there.
            [clientSession ? r.int(IDLE, 3 * HOUR) : IDLE, clientSession ? 6 : 1],
          ]);
          t += forced ? r.int(2 * MINUTE, 5 * MINUTE) : live ? r.int(30_000, 3 * MINUTE) : gap;
        }
        // The gap to the next visit: exactly 30 minutes, a millisecond less, or more.
        t += r.weighted<number>([
          [IDLE, 10],
          [IDLE - 1, 6],
          [IDLE + 1, 3],
          [r.int(IDLE, 5 * HOUR), 30],
          [r.int(5 * HOUR, 4 * DAY), 51],
        ]);
      }

      // Some signed-in people also have a back end that reports events under its own session id,
      // overlapping the browser's visits in time.
      if (userId && !bot && r.chance(0.25) && timeline.length > 0) {
        const anchor = r.pick(timeline).time;
        const sid = `srv-${site.key}-${++clientSessions}`;
        let bt = anchor + r.int(-20 * MINUTE, 20 * MINUTE);
        for (let k = r.int(1, 4); k > 0 && bt < opts.now - MINUTE; k--) {
          const it = base(person, "event", unique(bt), { anon, ...device });
          it.sessionId = sid;
          it.userId = userId;
          it.eventId = r.uuid();
          const ev = r.pick(site.events);
          it.name = ev.name;
          if (ev.conversion && r.chance(0.5)) it.conversion = true;
          timeline.push(it);
          bt += r.int(MINUTE, 50 * MINUTE);
        }
      }

      timeline.sort((a, b) => a.time - b.time || a.n - b.n);
      for (const it of timeline) if (it.time < opts.start || it.time > opts.now + 4 * MINUTE) throw new Error(`generator: item time out of range ${new Date(it.time).toISOString()}`);
      items.push(...timeline);
      personQueues.push(timeline);
    }
  }

  // Requests: per service, the people's timelines merged at random (each person's items stay in
  // time order from request to request, people interleave), cut into batches of random size;
  // single-item routes in between.
  const perService = new Map<string, Request[]>();
  for (const [service, people] of queues) {
    const reqs: Request[] = [];
    const pending = people.map((q) => (opts.lateMs ? lateOrder(r, q, opts.lateMs) : [...q])).filter((q) => q.length > 0);
    let batch: GenItem[] = [];
    let batchSize = r.int(40, 500);
    const cut = () => {
      // Some batches list their items out of time order: the service places a request's items in
      // time order (the 30-minute rule compares item times, whatever the order they arrive in).
      if (r.chance(0.3)) {
        for (let i = batch.length - 1; i > 0; i--) {
          const j = r.int(0, i);
          [batch[i], batch[j]] = [batch[j]!, batch[i]!];
        }
      }
      if (batch.length > 0) reqs.push({ kind: "batch", service, items: batch });
      batch = [];
      batchSize = r.int(40, 500);
    };
    while (pending.length > 0) {
      const qi = r.int(0, pending.length - 1);
      const q = pending[qi]!;
      for (let k = r.int(1, 6); k > 0 && q.length > 0; k--) {
        const it = q.shift()!;
        if (it.route !== "batch") {
          cut();
          reqs.push({ kind: "single", service, item: it });
        } else {
          batch.push(it);
          if (batch.length >= batchSize) cut();
        }
      }
      if (q.length === 0) pending.splice(qi, 1);
    }
    cut();
    // Items the service must refuse one by one (dropped as `invalid`, the rest of the batch kept):
    // a timestamp older than 30 days, an event without a name, Web Vitals without any metric.
    const batches = reqs.filter((q): q is Extract<Request, { kind: "batch" }> => q.kind === "batch");
    const who = { ip: r.pick(IPS), ua: r.pick(USER_AGENTS).ua };
    const invalid: GenItem[] = [
      { ...blank(n++, service, "pageview", opts.now - 31 * DAY, who), url: "https://blog.example/too-old", path: "/too-old" },
      { ...blank(n++, service, "event", opts.now - 2 * DAY, who), name: "" },
      { ...blank(n++, service, "vitals", opts.now - 3 * DAY, who), url: "https://blog.example/", path: "/", vitals: {} },
    ];
    for (const it of invalid) {
      it.drop = "invalid";
      const b = r.pick(batches);
      b.items.splice(r.int(0, b.items.length), 0, it);
      items.push(it);
    }
    perService.set(service, reqs);
  }
  const requests: Request[] = [];
  const lists = [...perService.values()];
  while (lists.some((l) => l.length > 0)) {
    const l = r.pick(lists.filter((x) => x.length > 0));
    requests.push(l.shift()!);
  }
  return { items, requests, services };
}

/** A person's items in the order they arrive when each is up to `lateMs` late (stable on ties). */
function lateOrder(r: Rng, timeline: readonly GenItem[], lateMs: number): GenItem[] {
  const keyed = timeline.map((it) => ({ it, at: it.time + r.int(0, lateMs) }));
  keyed.sort((a, b) => a.at - b.at || a.it.n - b.it.n);
  return keyed.map((k) => k.it);
}

function blank(n: number, service: string, type: ItemType, time: number, who: { ip: string; ua: string }): GenItem {
  return {
    n, service, person: "invalid", type, time, ip: who.ip, ua: who.ua, path: "", utm: { source: "", medium: "", campaign: "" },
    sessionReferrer: "", referrerDomain: "", route: "batch",
  };
}

/** The JSON an item is sent as (single-item routes take the same fields without `type`). */
export function itemBody(it: GenItem, withType: boolean): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (withType) body.type = it.type;
  // Mixed time formats: epoch ms, ISO UTC, ISO with an offset.
  body.timestamp = it.n % 3 === 0 ? it.time : it.n % 3 === 1 ? new Date(it.time).toISOString() : isoOffset(it.time, ((it.n % 7) - 3) * 90);
  body.ip = it.ip;
  body.user_agent = it.ua;
  if (it.eventId) body.event_id = it.eventId;
  if (it.anonymousId) body.anonymous_id = it.anonymousId;
  if (it.sessionId) body.session_id = it.sessionId;
  if (it.userId) body.user_id = it.userId;
  if (it.url !== undefined) body.url = it.url;
  if (it.referrer !== undefined) body.referrer = it.referrer;
  if (it.title !== undefined) body.title = it.title;
  if (it.name !== undefined) body.name = it.name;
  if (it.conversion !== undefined) body.conversion = it.conversion;
  if (it.properties !== undefined) body.properties = it.properties;
  if (it.funnel !== undefined) body.funnel = it.funnel;
  if (it.step !== undefined) body.step = it.step;
  if (it.stepName !== undefined) body.step_name = it.stepName;
  if (it.message !== undefined) body.message = it.message;
  if (it.stack !== undefined) body.stack = it.stack;
  if (it.source !== undefined) body.source = it.source;
  if (it.vitals) Object.assign(body, it.vitals);
  if (it.explicitUtm) Object.assign(body, it.explicitUtm);
  if (it.screen) body.screen = it.screen;
  if (it.language) body.language = it.language;
  if (it.timezone) body.timezone = it.timezone;
  return body;
}

function isoOffset(ms: number, offsetMinutes: number): string {
  const local = new Date(ms + offsetMinutes * MINUTE).toISOString().slice(0, 23);
  const abs = Math.abs(offsetMinutes);
  return `${local}${offsetMinutes < 0 ? "-" : "+"}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
}

/** The UTM a session takes from its first item: a session item's explicit fields win over its URL's. */
export function itemUtm(it: GenItem): { source: string; medium: string; campaign: string } {
  const u = it.explicitUtm;
  if (!u) return it.utm;
  return { source: u.utm_source ?? it.utm.source, medium: u.utm_medium ?? it.utm.medium, campaign: u.utm_campaign ?? it.utm.campaign };
}
