// The brute-force model: every answer of the query routes computed from the GENERATED items with
// plain loops, from API.md's definitions ("Sessions and metrics", "Precise readings"), without
// any of the service's code. It sessionizes by itself:
//   - items with a client session_id form that session, whatever their gaps;
//   - other items of one visitor form sessions split where 30 minutes or more pass between
//     consecutive item times; a visitor is an anonymous_id, else IP + user agent on the item's UTC
//     day (API.md: "a keyed hash of (daily salt, service, IP, user agent)"), so at UTC midnight a
//     hashed visitor is a new visitor and a visit going on then is two sessions;
//   - a session's visitor is that of its first item (a client session's items may carry several);
//   - a session's visitor, referrer, UTM, device, browser, OS, country and entry page come from
//     its first item (API.md: "A session's attributes (referrer, UTM, device, browser, OS, country,
//     entry page) come from its first item"; a first item without a URL gives no entry page),
//     its exit page from its last page view.
import { IDLE, itemUtm, type GenItem, type Vital } from "./traffic.ts";
import { buckets, type Interval } from "./zones.ts";

export const ATTRIBUTES = ["country", "device", "browser", "os", "utm_source", "utm_medium", "utm_campaign", "referrer_domain"] as const;
export type Attribute = (typeof ATTRIBUTES)[number];
export type Filters = Partial<Record<Attribute | "path", string>>;

export interface Range {
  start: number;
  end: number;
}

export interface AgentInfo {
  device: string;
  browser: string;
  os: string;
}

export interface MSession {
  /** Model key: service and first item time (item times are unique within a service). */
  key: string;
  service: string;
  clientId: string | undefined;
  visitor: string;
  items: GenItem[];
  start: number;
  end: number;
  pageviews: number;
  events: number;
  converted: boolean;
  bounce: boolean;
  entryPath: string;
  exitPath: string;
  referrer: string;
  userId: string;
  attrs: Record<Attribute, string>;
  viewedPaths: Set<string>;
}

const utcDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** The visitor of an item: its anonymous_id, else its IP and user agent on its UTC day (per service). */
export function visitorOf(it: GenItem): string {
  return `${it.service} ${it.anonymousId !== undefined ? `a:${it.anonymousId}` : `h:${it.ip}|${it.ua}|${utcDay(it.time)}`}`;
}

const byTime = (a: GenItem, b: GenItem) => a.time - b.time || a.n - b.n;
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export class Model {
  readonly sessions: MSession[] = [];
  readonly sessionOf = new Map<GenItem, MSession>();
  readonly items: GenItem[];

  constructor(
    accepted: readonly GenItem[],
    private readonly countryOf: (ip: string) => string,
    private readonly agentOf: (ua: string) => AgentInfo,
  ) {
    this.items = [...accepted].sort(byTime);
    const groups = new Map<string, GenItem[]>();
    for (const it of this.items) {
      const g = it.sessionId !== undefined ? `c|${it.service}|${it.sessionId}` : `v|${visitorOf(it)}`;
      const list = groups.get(g) ?? [];
      list.push(it);
      groups.set(g, list);
    }
    for (const [g, list] of groups) {
      if (g.startsWith("c|")) {
        this.add(list, list[0]!.sessionId);
        continue;
      }
      let current: GenItem[] = [];
      for (const it of list) {
        const last = current[current.length - 1];
        if (last && it.time - last.time >= IDLE) {
          this.add(current, undefined);
          current = [];
        }
        current.push(it);
      }
      if (current.length > 0) this.add(current, undefined);
    }
    this.sessions.sort((a, b) => a.start - b.start || cmp(a.key, b.key));
    const starts = new Set<string>();
    for (const s of this.sessions) {
      const k = `${s.service}|${s.start}`;
      if (starts.has(k)) throw new Error(`model: two sessions of ${s.service} start at ${new Date(s.start).toISOString()}; the generator keeps item times unique`);
      starts.add(k);
    }
  }

  private add(items: GenItem[], clientId: string | undefined): void {
    const first = items[0]!;
    const last = items[items.length - 1]!;
    const pageviews = items.filter((i) => i.type === "pageview");
    const events = items.filter((i) => i.type === "event");
    const agent = this.agentOf(first.ua);
    const utm = itemUtm(first);
    const users = items.filter((i) => i.userId);
    const s: MSession = {
      key: `${first.service}|${first.time}`,
      service: first.service,
      clientId,
      visitor: visitorOf(first),
      items,
      start: first.time,
      end: last.time,
      pageviews: pageviews.length,
      events: events.length,
      converted: events.some((e) => e.conversion === true),
      bounce: pageviews.length === 1 && events.length === 0,
      entryPath: first.path,
      exitPath: pageviews[pageviews.length - 1]?.path ?? "",
      referrer: first.sessionReferrer,
      userId: users[users.length - 1]?.userId ?? "",
      attrs: {
        country: this.countryOf(first.ip),
        device: agent.device,
        browser: agent.browser,
        os: agent.os,
        utm_source: utm.source,
        utm_medium: utm.medium,
        utm_campaign: utm.campaign,
        referrer_domain: first.referrerDomain,
      },
      viewedPaths: new Set(pageviews.map((p) => p.path)),
    };
    this.sessions.push(s);
    for (const it of items) this.sessionOf.set(it, s);
  }

  // ---- sessions ----

  /** Session-level filters: attributes of the session, and `path` = it has a page view of that path. */
  sessionMatches(s: MSession, f: Filters): boolean {
    for (const a of ATTRIBUTES) if (f[a] !== undefined && s.attrs[a] !== f[a]) return false;
    return f.path === undefined || s.viewedPaths.has(f.path);
  }

  /** Sessions that started in the range (a session belongs to the range in which it started). */
  sessionsIn(service: string, r: Range, f: Filters): MSession[] {
    return this.sessions.filter((s) => s.service === service && s.start >= r.start && s.start < r.end && this.sessionMatches(s, f));
  }

  totals(service: string, r: Range, f: Filters) {
    const list = this.sessionsIn(service, r, f);
    const n = list.length;
    const pageviews = sum(list, (s) => s.pageviews);
    const bounces = list.filter((s) => s.bounce).length;
    const durationMs = sum(list, (s) => s.end - s.start);
    return {
      sessions: n,
      visitors: new Set(list.map((s) => s.visitor)).size,
      pageviews,
      bounces,
      bounce_rate: n === 0 ? null : bounces / n,
      avg_duration_s: n === 0 ? null : durationMs / (n * 1000),
      pages_per_session: n === 0 ? null : pageviews / n,
      conversions: list.filter((s) => s.converted).length,
    };
  }

  series(service: string, r: Range, tz: string, interval: Interval, f: Filters) {
    const starts = buckets(r.start, r.end, tz, interval);
    const list = this.sessionsIn(service, r, f);
    return starts.map((t, i) => {
      const end = starts[i + 1] ?? Infinity;
      const inBucket = list.filter((s) => s.start >= t && s.start < end);
      return {
        t: new Date(t).toISOString(),
        sessions: inBucket.length,
        visitors: new Set(inBucket.map((s) => s.visitor)).size,
        pageviews: sum(inBucket, (s) => s.pageviews),
        bounces: inBucket.filter((s) => s.bounce).length,
      };
    });
  }

  distribution(service: string, r: Range, f: Filters, dim: "device" | "browser" | "os" | "country") {
    return group(this.sessionsIn(service, r, f), (s) => s.attrs[dim]).map(([value, of]) => ({ value, sessions: of.length, bounces: of.filter((s) => s.bounce).length }));
  }

  utm(service: string, r: Range, f: Filters) {
    const list = this.sessionsIn(service, r, f).filter((s) => s.attrs.utm_source !== "");
    return group(list, (s) => `${s.attrs.utm_source}\u0000${s.attrs.utm_medium}\u0000${s.attrs.utm_campaign}`).map(([k, of]) => {
      const [utm_source, utm_medium, utm_campaign] = k.split("\u0000") as [string, string, string];
      return { utm_source, utm_medium, utm_campaign, sessions: of.length, conversions: of.filter((s) => s.converted).length };
    });
  }

  stats(service: string, r: Range, previous: Range, tz: string, interval: Interval, f: Filters) {
    return {
      totals: this.totals(service, r, f),
      previous: this.totals(service, previous, f),
      series: this.series(service, r, tz, interval, f),
      distributions: {
        device: this.distribution(service, r, f, "device"),
        browser: this.distribution(service, r, f, "browser"),
        os: this.distribution(service, r, f, "os"),
        country: this.distribution(service, r, f, "country"),
      },
      utm: this.utm(service, r, f),
    };
  }

  /** The session list, newest first (session starts are unique within a service). */
  sessionList(service: string, r: Range, f: Filters): MSession[] {
    return this.sessionsIn(service, r, f).sort((a, b) => b.start - a.start);
  }

  // ---- items ----

  /** Item-level filters: the item's session has the attributes; `path` is the item's own path. */
  itemMatches(it: GenItem, f: Filters): boolean {
    const s = this.sessionOf.get(it)!;
    for (const a of ATTRIBUTES) if (f[a] !== undefined && s.attrs[a] !== f[a]) return false;
    return f.path === undefined || it.path === f.path;
  }

  /** Items of a type at their own time in the range. */
  itemsIn(service: string, type: GenItem["type"], r: Range, f: Filters): GenItem[] {
    return this.items.filter((it) => it.service === service && it.type === type && it.time >= r.start && it.time < r.end && this.itemMatches(it, f));
  }

  behavior(service: string, r: Range, f: Filters, limit: number) {
    const sessions = this.sessionsIn(service, r, f);
    const bySession = (key: (s: MSession) => string) =>
      group(sessions.filter((s) => key(s) !== ""), key).slice(0, limit).map(([k, of]) => ({ k, n: of.length }));
    return {
      sessions: this.totals(service, r, f),
      top_pages: group(this.itemsIn(service, "pageview", r, f), (i) => i.path).slice(0, limit).map(([path, of]) => ({ path, views: of.length, visitors: new Set(of.map(visitorOf)).size })),
      entry_pages: bySession((s) => s.entryPath).map(({ k, n }) => ({ path: k, sessions: n })),
      exit_pages: bySession((s) => s.exitPath).map(({ k, n }) => ({ path: k, sessions: n })),
      top_events: group(this.itemsIn(service, "event", r, f), (i) => i.name!).slice(0, limit).map(([name, of]) => ({ name, count: of.length, visitors: new Set(of.map(visitorOf)).size })),
      top_referrers: bySession((s) => s.attrs.referrer_domain).map(({ k, n }) => ({ referrer_domain: k, sessions: n })),
      web_vitals: this.webVitals(service, r, f),
      top_errors: group(this.itemsIn(service, "error", r, f), (i) => i.errorGroup!).slice(0, limit).map(([groupName, of]) => {
        const latest = [...of].sort((a, b) => b.time - a.time || cmp(b.message!, a.message!))[0]!;
        return { group: groupName, message: latest.message!, count: of.length, sessions: new Set(of.map((i) => this.sessionOf.get(i)!)).size, last_seen: new Date(latest.time).toISOString() };
      }),
    };
  }

  webVitals(service: string, r: Range, f: Filters) {
    const rows = this.itemsIn(service, "vitals", r, f);
    const thresholds: Record<Vital, [number, number]> = { lcp: [2500, 4000], inp: [200, 500], cls: [0.1, 0.25], fcp: [1800, 3000], ttfb: [800, 1800] };
    const out = {} as Record<Vital, { p75: number | null; samples: number; good: number; needs_improvement: number; poor: number }>;
    for (const m of Object.keys(thresholds) as Vital[]) {
      const [good, poor] = thresholds[m];
      const xs = rows.map((i) => i.vitals![m]).filter((x): x is number => x !== undefined).sort((a, b) => a - b);
      out[m] = {
        p75: percentileInclusive(xs, 0.75),
        samples: xs.length,
        good: xs.filter((x) => x <= good).length,
        needs_improvement: xs.filter((x) => x > good && x <= poor).length,
        poor: xs.filter((x) => x > poor).length,
      };
    }
    return out;
  }

  /** Custom events, newest first. */
  events(service: string, r: Range, f: Filters, q: { name?: string; sessionKey?: string; userId?: string }): GenItem[] {
    return this.itemsIn(service, "event", r, f)
      .filter((it) => (q.name === undefined || it.name === q.name) && (q.userId === undefined || (it.userId ?? "") === q.userId) && (q.sessionKey === undefined || this.sessionOf.get(it)!.key === q.sessionKey))
      .sort((a, b) => b.time - a.time || cmp(b.eventId!, a.eventId!));
  }

  // ---- funnels ----

  funnel(service: string, name: string, r: Range, f: Filters, windowS: number, by: "session" | "visitor") {
    const steps = this.itemsIn(service, "funnel", r, f).filter((i) => i.funnel === name);
    const top = Math.max(0, ...steps.map((i) => i.step!));
    const units = new Map<string, GenItem[]>();
    for (const it of steps) {
      // By visitor: the item's own visitor (its anonymous_id, else IP + user agent on its UTC day).
      const unit = by === "session" ? this.sessionOf.get(it)!.key : visitorOf(it);
      units.set(unit, [...(units.get(unit) ?? []), it]);
    }
    const windowMs = windowS * 1000;
    const reached = new Array<number>(top + 1).fill(0);
    const deltas: number[][] = Array.from({ length: top + 1 }, () => []);
    for (const list of units.values()) {
      // windowFunnel orders a unit's events by (time, step).
      const events = list.map((i) => [i.time, i.step!] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      const level = levelByExistence(events, windowMs);
      const chain = firstChainToTop(events, windowMs);
      if (chain.length !== level) throw new Error(`model: greedy chain ${chain.length} disagrees with existence ${level}`);
      for (let k = 1; k <= level; k++) reached[k]! += 1;
      for (let k = 2; k <= level; k++) deltas[k]!.push(chain[k - 1]! - chain[k - 2]!);
    }
    const ratio = (n: number, d: number) => (d === 0 ? null : n / d);
    const stepName = (k: number) => {
      const named = steps.filter((i) => i.step === k && i.stepName).sort((a, b) => b.time - a.time || cmp(b.stepName!, a.stepName!));
      return named[0]?.stepName ?? "";
    };
    return {
      funnel: name,
      steps: Array.from({ length: top }, (_, j) => {
        const k = j + 1;
        return {
          step: k,
          name: stepName(k),
          units: reached[k]!,
          conversion_from_previous: k === 1 ? 1 : ratio(reached[k]!, reached[k - 1]!),
          conversion_from_start: k === 1 ? 1 : ratio(reached[k]!, reached[1]!),
          median_seconds_from_previous: k === 1 ? null : median(deltas[k]!),
        };
      }),
      overall_conversion: top === 0 ? null : ratio(reached[top]!, reached[1]!),
    };
  }
}

/**
 * The highest k for which events e1..ek exist with steps 1..k, in (time, step) order, all within
 * the window of e1's time (API.md: "steps 1..k in order, each after the previous, all within
 * window seconds of step 1").
 */
export function levelByExistence(events: ReadonlyArray<readonly [number, number]>, windowMs: number): number {
  let best = 0;
  for (let s = 0; s < events.length; s++) {
    if (events[s]![1] !== 1) continue;
    const t0 = events[s]![0];
    let level = 1;
    for (let i = s + 1; i < events.length && events[i]![0] <= t0 + windowMs; i++) if (events[i]![1] === level + 1) level++;
    best = Math.max(best, level);
  }
  return best;
}

/**
 * The event times of the chain that first reaches the unit's level when windowFunnel's pass runs
 * over the events (a step-1 event starts a chain; a step-k event extends the latest chain that
 * reached k-1, within the window of that chain's step 1). Medians of time between steps use it.
 */
export function firstChainToTop(events: ReadonlyArray<readonly [number, number]>, windowMs: number): number[] {
  const slots: Array<number[] | undefined> = [];
  let best: number[] = [];
  for (const [t, step] of events) {
    let chain: number[];
    if (step === 1) chain = [t];
    else {
      const prev = slots[step - 2];
      if (!prev || t > prev[0]! + windowMs) continue;
      chain = [...prev, t];
    }
    slots[step - 1] = chain;
    if (chain.length > best.length) best = chain;
  }
  return best;
}

/** The median of ms gaps, in seconds: the exact value (the middle two's mean) rounded once. */
export function median(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! / 1000 : (s[m - 1]! + s[m]!) / 2000;
}

/** p75 as linear interpolation between closest ranks over the sorted samples (inclusive). */
export function percentileInclusive(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const h = p * (sorted.length - 1);
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!);
}

function sum<T>(xs: readonly T[], f: (x: T) => number): number {
  let total = 0;
  for (const x of xs) total += f(x);
  return total;
}

/** Groups by key: most members first, ties by key. */
export function group<T>(xs: readonly T[], key: (x: T) => string): Array<[string, T[]]> {
  const m = new Map<string, T[]>();
  for (const x of xs) {
    const k = key(x);
    const list = m.get(k);
    if (list) list.push(x);
    else m.set(k, [x]);
  }
  return [...m.entries()].sort((a, b) => b[1].length - a[1].length || cmp(a[0], b[0]));
}

