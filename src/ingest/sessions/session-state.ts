// What a session is, as pure data and pure transitions (API.md "Sessions and metrics").
// Every item of a session is a "touch": it extends the session's time span, and page views,
// custom events and conversions change its counters. Attributes come from the earliest item.

/** A gap of this much or more between two items of a visitor starts a new session. */
export const IDLE_MS = 30 * 60 * 1000;

/** Session attributes taken from the session's earliest item. */
export interface SessionAttributes {
  hostname: string;
  referrer: string;
  referrer_domain: string;
  utm_source: string;
  utm_medium: string;
  utm_campaign: string;
  utm_term: string;
  utm_content: string;
  device: string;
  browser: string;
  os: string;
  country: string;
  screen_width: number;
  screen_height: number;
  language: string;
  timezone: string;
}

/** What one item contributes to its session. */
export interface Touch {
  time: number;
  kind: "session" | "pageview" | "event" | "funnel" | "error" | "vitals";
  /** Normalised path of the item's URL, or "" when it has none. */
  path: string;
  conversion: boolean;
  userId: string;
  attrs: SessionAttributes;
}

export interface SessionState {
  service_id: string;
  session_id: string;
  visitor_id: string;
  user_id: string;
  started_at: number;
  ended_at: number;
  pageviews: number;
  events: number;
  items: number;
  converted: boolean;
  entry_path: string;
  /** Time of the item that gave entry_path (the session's earliest item). */
  entry_at: number;
  exit_path: string;
  /** Time of the last page view (exit_path), 0 when there is none. */
  exit_at: number;
  attrs: SessionAttributes;
  version: number;
  /** Time of the item that gave user_id (absent in states written before it was kept: 0). */
  user_at?: number;
  /**
   * Ids of the sessions merged into this one (a late item bridged them): their items keep those
   * ids and are read as this session's through session_aliases. Absent when none.
   */
  merged?: string[];
  /**
   * Opened by an item that carried the client's own session_id: the 30-minute rule never joins it,
   * so it is never filed in the visitor's spans (also when rebuilt after a restart). Absent otherwise.
   */
  client?: true;
}

/** entry_at before any item (JSON-safe, unlike Infinity). */
const NO_ENTRY = Number.MAX_SAFE_INTEGER;

/** A new session whose first item is `touch`. */
export function openSession(serviceId: string, sessionId: string, visitorId: string, touch: Touch): SessionState {
  const base: SessionState = {
    service_id: serviceId,
    session_id: sessionId,
    visitor_id: visitorId,
    user_id: "",
    started_at: touch.time,
    ended_at: touch.time,
    pageviews: 0,
    events: 0,
    items: 0,
    converted: false,
    entry_path: "",
    entry_at: NO_ENTRY,
    exit_path: "",
    exit_at: 0,
    attrs: touch.attrs,
    version: 0,
  };
  return applyTouch(base, touch);
}

/** The session after one more item. Out-of-order items are placed by their own time. */
export function applyTouch(s: SessionState, t: Touch): SessionState {
  const next: SessionState = { ...s, version: s.version + 1, items: s.items + 1 };
  if (t.time < s.started_at) {
    next.started_at = t.time;
    next.attrs = t.attrs;
  }
  if (t.time > s.ended_at) next.ended_at = t.time;
  if (t.kind === "pageview") {
    next.pageviews++;
    if (t.time >= s.exit_at) {
      next.exit_path = t.path;
      next.exit_at = t.time;
    }
  }
  if (t.kind === "event") {
    next.events++;
    if (t.conversion) next.converted = true;
  }
  // API.md: the entry page, like the other attributes, comes from the first item (none when that
  // item has no URL, e.g. a back-end event).
  if (t.time < s.entry_at) {
    next.entry_path = t.path;
    next.entry_at = t.time;
  }
  // The user id of the latest item (by time) that has one: a late item does not override it.
  if (t.userId !== "" && t.time >= (s.user_at ?? 0)) {
    next.user_id = t.userId;
    next.user_at = t.time;
  }
  return next;
}

/**
 * One session made of two whose items a late item brought within 30 minutes of each other:
 * `into` keeps its id and visitor (it must be the one that started first), `other` is absorbed.
 * Counters add up; start, attributes and entry come from the earliest item, exit from the latest
 * page view, the user id from the latest item that has one. The version is above both, so the
 * new row follows the cancel rows of either state and aliases written with it supersede older ones.
 */
export function mergeSessions(into: SessionState, other: SessionState): SessionState {
  const next: SessionState = {
    ...into,
    version: Math.max(into.version, other.version) + 1,
    started_at: Math.min(into.started_at, other.started_at),
    ended_at: Math.max(into.ended_at, other.ended_at),
    pageviews: into.pageviews + other.pageviews,
    events: into.events + other.events,
    items: into.items + other.items,
    converted: into.converted || other.converted,
    merged: [...(into.merged ?? []), other.session_id, ...(other.merged ?? [])],
  };
  if (other.started_at < into.started_at) next.attrs = other.attrs;
  if (other.entry_at < into.entry_at) {
    next.entry_path = other.entry_path;
    next.entry_at = other.entry_at;
  }
  if (other.exit_at > into.exit_at) {
    next.exit_path = other.exit_path;
    next.exit_at = other.exit_at;
  }
  const intoUser = into.user_id === "" ? -1 : into.user_at ?? 0;
  const otherUser = other.user_id === "" ? -1 : other.user_at ?? 0;
  if (otherUser > intoUser) {
    next.user_id = other.user_id;
    next.user_at = other.user_at ?? 0;
  }
  return next;
}

/** Bounce: exactly one page view and no custom event. */
export function isBounce(s: SessionState): boolean {
  return s.pageviews === 1 && s.events === 0;
}

/** A recent session of a visitor, enough to tell which session a new item belongs to. */
export interface SessionSpan {
  id: string;
  first: number;
  last: number;
  /** Wall-clock time the session last changed (its state lives STATE_TTL_MS from then). */
  at?: number;
}

/** Every span of the visitor an item at `time` is less than IDLE_MS from, earliest first. */
export function matchingSpans(spans: readonly SessionSpan[], time: number): SessionSpan[] {
  const out = spans.filter((span) => time - span.last < IDLE_MS && span.first - time < IDLE_MS);
  if (out.length > 1) out.sort((a, b) => a.first - b.first);
  return out;
}

/**
 * Spans kept per visitor at most. A span goes when its session's state does (STATE_TTL_MS after
 * the session last changed: it names no session to go on after that), so a visitor on a live site
 * has a few. A back-fill sent in any order can have every session of one visitor changing at
 * once (a month of a busy visitor's sessions, each in several pieces until the items between
 * them arrive): each needs its span for a late item to find it. Item times reach back 30 days
 * and 5 minutes ahead, and sessions are at least 30 minutes apart, so a visitor has at most
 * 43,205 / 30 + 1 = 1,441 sessions with items in that window: the cap is above that, so no span
 * that a back-fill can still need is dropped. (It was 256: a heavy `anonymous_id` back-filled over
 * a week did not merge its old sessions.) Past the cap, the sessions with the oldest last item
 * would go first.
 */
export const MAX_SPANS = 2048;

/** The visitor's spans after `session` changed at wall-clock `now`, newest first, capped. */
export function updateSpans(spans: readonly SessionSpan[], session: SessionState, now: number, ttlMs: number): SessionSpan[] {
  const gone = session.merged;
  // A span written before spans carried `at` (a rolling upgrade) ages by its last item's time.
  const updated = spans.filter((s) => s.id !== session.session_id && !(gone && gone.includes(s.id)) && now - (s.at ?? s.last) < ttlMs);
  // Spans are kept newest first (every list is made here, and the warm-up builds its lists here
  // too), so the changed one goes in at its place (ahead of equal ones):
  // a visitor with a thousand spans pays a scan per item, not a sort.
  const span = { id: session.session_id, first: session.started_at, last: session.ended_at, at: now };
  let at = 0;
  while (at < updated.length && updated[at]!.last > span.last) at++;
  updated.splice(at, 0, span);
  return updated.length > MAX_SPANS ? updated.slice(0, MAX_SPANS) : updated;
}

/**
 * A visitor's spans as live traffic wrote them while the state was lost, with the spans a rebuild
 * found in ClickHouse added (a live span wins over a rebuilt one of the same session), newest
 * first: so the visitor's next items find the sessions from before the loss too, instead of
 * starting new ones beside them (a Valkey-loss audit: a FLUSHALL's 1-3 s split 23-86 visitors'
 * sessions, some long after).
 */
export function mergeSpans(live: readonly SessionSpan[], rebuilt: readonly SessionSpan[]): SessionSpan[] {
  const ids = new Set(live.map((s) => s.id));
  const out = [...live, ...rebuilt.filter((s) => !ids.has(s.id))];
  out.sort((a, b) => b.last - a.last); // stable: a live span stays ahead of an equal rebuilt one
  return out.length > MAX_SPANS ? out.slice(0, MAX_SPANS) : out;
}
