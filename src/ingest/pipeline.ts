// Ingestion as a named list of small steps (after Plausible's ingestion/event.ex). Each step reads
// and extends one item's context and may drop the item with a named reason; a dropped item stops
// there. The steps are pure but for the salt and country look-ups passed in.
import * as v from "valibot";
import { toIssues, type Issue } from "../errors.ts";
import { detectBot, serverRequestAgent } from "./enrich/bot.ts";
import { clientIp } from "./enrich/client-ip.ts";
import { normaliseIp } from "./enrich/ip-address.ts";
import { countryFromHeaders, type CountryLookup } from "./enrich/country.ts";
import { errorFingerprint } from "./enrich/error-fingerprint.ts";
import type { SaltStore } from "./enrich/salt-store.ts";
import { parsePageUrl, referrerDomain, type Utm } from "./enrich/url-parts.ts";
import { parseUserAgent } from "./enrich/user-agent.ts";
import { visitorId } from "./enrich/visitor-id.ts";
import { ITEM_SCHEMAS, keepReservedProperties, USER_AGENT_MAX, type DropReason, type Item, type ItemType } from "./schemas.ts";
import { BoundedMap, memoize } from "../memo.ts";
import { DAY_MS, parseIsoTime, utcDay } from "../iso-time.ts";

/** Why an item was not accepted (API.md: at least invalid, bot, duplicate). */
export type { DropReason };

export class Drop {
  constructor(readonly reason: DropReason, readonly message: string, readonly issues?: Issue[]) {}
}

/** What the request tells about every item in it. */
export interface RequestContext {
  serviceId: string;
  keyType: "public" | "secret";
  headers: Headers;
  /** The connection's peer address (may be computed on first read). */
  readonly socketIp: string | undefined;
  receivedAt: number;
  trustProxy: boolean;
}

/** An accepted item with everything derived from it. */
export interface EnrichedItem {
  index: number;
  type: ItemType;
  item: Item;
  serviceId: string;
  eventId: string;
  time: number;
  receivedAt: number;
  clientSessionId: string | undefined;
  userId: string;
  visitorId: string;
  url: string;
  path: string;
  hostname: string;
  referrer: string;
  referrerDomain: string;
  utm: Utm;
  device: string;
  browser: string;
  os: string;
  country: string;
  fingerprint: string;
}

export interface PipelineDeps {
  /** The salted visitor id of (UTC day, service, IP, user agent); see visitorHasher (a string when remembered). */
  hashVisitor: (day: string, serviceId: string, ip: string, ua: string) => string | Promise<string>;
  lookupCountry: CountryLookup;
}

/**
 * Visitor ids from the day's salt, remembered for the most recent visitors: one visitor sends
 * many items a day, and each HMAC costs a few µs (and the day's salt a look-up, in Valkey when shared).
 */
export function visitorHasher(salts: SaltStore, max = 100_000): PipelineDeps["hashVisitor"] {
  const recent = new BoundedMap<string, string>(max);
  // A new visitor's first requests often arrive together: they share one computation.
  const computing = new Map<string, Promise<string>>();
  const compute = (key: string, day: string, serviceId: string, ip: string, ua: string) => {
    let id = computing.get(key);
    if (id === undefined) {
      id = salts.saltFor(day)
        .then((salt) => visitorId(salt, serviceId, ip, ua))
        .then((v) => (recent.set(key, v), v))
        .finally(() => computing.delete(key));
      computing.set(key, id);
    }
    return id;
  };
  // A remembered id is answered synchronously: no promise, no microtask per item.
  return (day, serviceId, ip, ua) => {
    const key = `${day}\0${serviceId}\0${ip}\0${ua}`;
    return recent.get(key) ?? compute(key, day, serviceId, ip, ua);
  };
}

// Page URLs and referrers repeat across visitors (one site has a bounded set of pages; most
// referrers are a few search engines): their parts are remembered. Frozen: they are shared.
// Only URLs up to MEMO_URL_MAX characters: a long one is rarely sent twice, and its parts keep
// its path and UTM values whole (a 2,048-character URL of CJK text has a path of up to ~18,000
// characters once percent-encoded: 9 per character), which would let 20,000 remembered ones hold hundreds of megabytes.
const MEMO_URL_MAX = 512;
const frozenParts = (url: string) => {
  const parts = parsePageUrl(url);
  return parts && Object.freeze({ ...parts, utm: Object.freeze(parts.utm) });
};
const rememberedParts = memoize(frozenParts, 20_000);
const pageParts = (url: string) => (url.length <= MEMO_URL_MAX ? rememberedParts(url) : frozenParts(url));
const rememberedDomain = memoize(referrerDomain, 10_000);
const referrerDomainOf = (url: string) => (url.length <= MEMO_URL_MAX ? rememberedDomain(url) : referrerDomain(url));

/** utcDay of the last two days asked for (a request's items may straddle a UTC midnight). */
const days: Array<{ day: number; text: string }> = [{ day: NaN, text: "" }, { day: NaN, text: "" }];
function utcDayOf(time: number): string {
  const day = Math.floor(time / DAY_MS);
  for (const d of days) if (d.day === day) return d.text;
  const entry = { day, text: utcDay(time) };
  days.unshift(entry);
  days.length = 2;
  return entry.text;
}

const BACKFILL_MS = 30 * DAY_MS;
const AHEAD_MS = 5 * 60 * 1000;
const NO_UTM: Utm = { source: "", medium: "", campaign: "", term: "", content: "" };

/** Step 1: the item matches its type's schema. */
export function validateItem(raw: unknown, type: ItemType | undefined): Item | Drop {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    const message = "an item must be a JSON object";
    return new Drop("invalid", message, [{ path: "", message }]);
  }
  const t = (type ?? (raw as { type?: unknown }).type) as ItemType;
  const schema = ITEM_SCHEMAS[t];
  if (!schema || !Object.hasOwn(ITEM_SCHEMAS, t)) {
    const message = `must be one of ${Object.keys(ITEM_SCHEMAS).join(", ")}`;
    return new Drop("invalid", `type ${message}`, [{ path: "type", message }]);
  }
  const parsed = v.safeParse(schema, raw);
  if (!parsed.success) {
    const issues = toIssues(parsed.issues);
    const first = issues[0]!;
    return new Drop("invalid", first.path ? `${first.path}: ${first.message}` : first.message, issues);
  }
  return keepReservedProperties(raw, { ...parsed.output, type: t } as Item);
}

const SECRET_KEY_FIELDS = ["ip", "user_agent", "timestamp"] as const;

/**
 * Step 0, before the item's values are checked: a public key may not send `ip`, `user_agent` or
 * `timestamp` at all, whatever they hold (a malformed `ip` was a 400 that became a 403 once fixed).
 */
export function publicKeyFields(raw: unknown, ctx: RequestContext): Drop | undefined {
  if (ctx.keyType !== "public" || typeof raw !== "object" || raw === null) return undefined;
  for (const field of SECRET_KEY_FIELDS) {
    if (Object.hasOwn(raw, field)) return new Drop("forbidden", `${field} can only be set with a secret key`);
  }
  return undefined;
}

/** Step 2: the item's `service_id`, when it sends one, is the key's. */
export function authorizeItem(item: Item, ctx: RequestContext): Drop | undefined {
  if (item.service_id !== undefined && item.service_id !== ctx.serviceId) {
    return new Drop("forbidden", `service_id ${item.service_id} is not the key's service (${ctx.serviceId})`);
  }
  return undefined;
}

/** Step 3: item time — the secret key's timestamp (30 days back to 5 minutes ahead) or arrival. */
export function itemTime(item: Item, ctx: RequestContext): number | Drop {
  if (item.timestamp === undefined) return ctx.receivedAt;
  const time = typeof item.timestamp === "number" ? item.timestamp : parseIsoTime(item.timestamp);
  if (time < ctx.receivedAt - BACKFILL_MS || time > ctx.receivedAt + AHEAD_MS) {
    let message = "must be within the last 30 days and at most 5 minutes ahead";
    // A number is epoch milliseconds; one that is now in epoch seconds was most likely meant.
    if (typeof item.timestamp === "number" && Math.abs(item.timestamp * 1000 - ctx.receivedAt) <= BACKFILL_MS) {
      message += ` (a number is epoch milliseconds: ${item.timestamp} reads as ${new Date(time).toISOString()}; multiply seconds by 1000)`;
    }
    return new Drop("invalid", `timestamp: ${message}`, [{ path: "timestamp", message }]);
  }
  return time;
}

/**
 * Runs every step for one raw item; an EnrichedItem or the Drop that stopped it. Synchronous
 * unless a visitor id has to be computed (its day's salt is looked up), which then makes it a promise.
 */
export function enrichItem(raw: unknown, index: number, type: ItemType | undefined, ctx: RequestContext, deps: PipelineDeps): EnrichedItem | Drop | Promise<EnrichedItem | Drop> {
  const refused = publicKeyFields(raw, ctx);
  if (refused) return refused;
  const item = validateItem(raw, type);
  if (item instanceof Drop) return item;
  const denied = authorizeItem(item, ctx);
  if (denied) return denied;
  const time = itemTime(item, ctx);
  if (time instanceof Drop) return time;

  // Server keys speak for their own clients: their items carry the client's IP and user agent,
  // else the request's (a User-Agent header naming an HTTP library is the back end's own client:
  // no user agent). Without a user agent a server item is not a browser hit: no bot check.
  // A public key's request without an `Origin` header is "a server or a tool" (API.md: accepted;
  // browsers send `Origin` with every POST), so its header is read the same way: a crawler's is a
  // bot, an HTTP library's or none is the tool itself. A public item cannot set `user_agent`/`ip`.
  // The header is cut to an item's limit: it keys the visitor-id cache, and a header may be 64 KiB.
  const fromServer = ctx.keyType === "secret" || !ctx.headers.has("origin");
  const header = ctx.headers.get("user-agent")?.slice(0, USER_AGENT_MAX) ?? null;
  const ua = fromServer ? item.user_agent ?? serverRequestAgent(header) : header ?? "";
  if ((!fromServer || ua !== "") && detectBot(ua)) return new Drop("bot", "the user agent is a bot or a script");
  // An item's own address is read in its canonical text, as the connection's is (clientIp): one
  // host is one visitor however it is written (2001:DB8::1, ::ffff:8.8.8.8 and 8.8.8.8's forms).
  const ip = fromServer && item.ip ? normaliseIp(item.ip) ?? item.ip : clientIp(ctx.headers, ctx.socketIp, ctx.trustProxy);
  const headerCountry = fromServer && item.ip ? null : countryFromHeaders(ctx.headers, ctx.trustProxy);
  const agent = parseUserAgent(ua);

  const page = item.url ? pageParts(item.url) : null;
  const refDomain = item.referrer ? referrerDomainOf(item.referrer) : "";
  let utm = page?.utm ?? NO_UTM;
  if (item.type === "session") {
    utm = {
      source: item.utm_source ?? utm.source, medium: item.utm_medium ?? utm.medium, campaign: item.utm_campaign ?? utm.campaign,
      term: item.utm_term ?? utm.term, content: item.utm_content ?? utm.content,
    };
  }
  // API.md: `anonymous_id` is "a client-kept visitor id": it is the visitor id, as sent (each
  // service's ids are its own: session state and every query are scoped by service). Otherwise
  // the id is keyed with the salt of the item's UTC day: at UTC midnight the same person is
  // another visitor, so a visit going on then is two sessions (README, "Midnight").
  const visitor = item.anonymous_id ? item.anonymous_id : deps.hashVisitor(utcDayOf(time), ctx.serviceId, ip, ua);

  const build = (visitorId: string): EnrichedItem => ({
    index,
    type: item.type,
    item,
    serviceId: ctx.serviceId,
    eventId: item.event_id?.toLowerCase() ?? crypto.randomUUID(),
    time,
    receivedAt: ctx.receivedAt,
    clientSessionId: item.session_id,
    userId: item.user_id ?? "",
    visitorId,
    url: item.url ?? "",
    path: page?.path ?? "",
    hostname: page?.hostname ?? "",
    referrer: item.referrer ?? "",
    referrerDomain: refDomain,
    utm,
    device: agent.device,
    browser: agent.browser,
    os: agent.os,
    country: headerCountry ?? deps.lookupCountry(ip) ?? "",
    fingerprint: item.type === "error" ? errorFingerprint(item.message, item.stack, item.source) : "",
  });
  return typeof visitor === "string" ? build(visitor) : visitor.then(build);
}
