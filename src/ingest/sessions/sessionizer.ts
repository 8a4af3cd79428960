// Assigns every item to a session and computes the session's new state, for a whole request at
// once: read the visitors' recent sessions, place each item (in time order), then write every
// changed state back with one compare-and-set. The result also says which session rows to write:
// a cancel row for each session's previous state and a row for its new state.
// A late item within 30 minutes of two of the visitor's sessions merges them (the earlier one
// keeps its id); the other's items, already stored under its id, are mapped through an alias.
import {
  applyTouch, matchingSpans, mergeSessions, openSession, updateSpans,
  type SessionSpan, type SessionState, type Touch,
} from "./session-state.ts";
import { ApiError } from "../../errors.ts";
import type { StateStore, StateWrite, Stored } from "./state-store.ts";

/** One item to place: whose it is, and what it does to its session. */
export interface Placement {
  serviceId: string;
  visitorId: string;
  /** The client's own session id: it always wins over the 30-minute rule. */
  sessionId?: string;
  touch: Touch;
}

export interface SessionChange {
  before: SessionState | undefined;
  after: SessionState;
}

/** Items stored under `alias` belong to session `canonical` (the latest version wins). */
export interface SessionAlias {
  service_id: string;
  alias: string;
  canonical: string;
  /** The canonical session's state version that made the alias: higher than any earlier one. */
  version: number;
  /** The canonical session's start. */
  started_at: number;
}

export interface Assignment {
  /** The session id of each placement, in input order. */
  sessionIds: string[];
  /** Sessions this request changed, with their state before and after. */
  changes: SessionChange[];
  /**
   * Stored states of sessions this request merged into another (a late item bridged them): each
   * gets a cancel row and no new row.
   */
  cancelled: SessionState[];
  /** Ids of merged sessions and the session their items belong to now (chains resolved). */
  aliases: SessionAlias[];
  /** The state writes this assignment committed (what `undo` takes back). */
  writes: readonly StateWrite[];
  /**
   * The name these writes are journaled under until `settle` (a shared store keeps them, so a
   * restart can take back writes whose rows a crash kept from being written).
   */
  journal: string;
}

/** Keep session state this long after its last change (late and back-filled items find it). */
export const STATE_TTL_MS = 2 * 60 * 60 * 1000;
const MAX_ATTEMPTS = 16;
/**
 * How long a request waits, at most, for another instance to settle a commit it builds on (the
 * store's "pending"): milliseconds while that instance lives; an instance that stopped between its
 * commit and its spool write settles it only when it is back (journal-recovery.ts), so the request
 * is refused with 503 instead (its client retries).
 */
const PENDING_WAIT_MS = 2_000;
const PENDING_POLL_MS = 20;
/** Merge markers followed when loading (a chain of merges longer than this is not expected). */
const MAX_HOPS = 8;
/**
 * Merge markers and this request's own merges followed when resolving an id in memory: a guard
 * against a cycle, far above any real chain (each hop here costs a map look-up, not a load).
 */
const MAX_REDIRECTS = 64;

const visitorKey = (svc: string, visitor: string) => `v:${svc}:${visitor}`;
const sessionKey = (svc: string, session: string) => `s:${svc}:${session}`;

export class Sessionizer {
  #journalSeq = 0;

  constructor(
    private readonly store: StateStore,
    private readonly newId: () => string = () => crypto.randomUUID(),
    private readonly now: () => number = Date.now,
    private readonly pendingWaitMs = PENDING_WAIT_MS,
  ) {}

  /**
   * Places every item; retries when another instance changed the same visitors meanwhile, and
   * waits while another instance's commit it would build on is not settled.
   */
  async assign(placements: readonly Placement[]): Promise<Assignment> {
    const started = performance.now();
    for (let attempt = 1; ; attempt++) {
      const result = await this.#attempt(placements);
      if (result === "pending") {
        if (performance.now() - started >= this.pendingWaitMs) {
          throw new ApiError("unavailable", "Another instance of the service wrote this request's visitors' session state and stopped before storing it; retry once it is back (at most a minute)", { retryAfterSeconds: 5 });
        }
        attempt--; // waiting, not contention
        await new Promise((r) => setTimeout(r, PENDING_POLL_MS));
        continue;
      }
      if (result) return result;
      // Contention, not a fault: nothing was written, and the same request a moment later goes
      // through (a 503 the client retries; it was a 500, seen with dozens of clients on a few
      // visitors at the shared state's limit).
      if (attempt >= MAX_ATTEMPTS) {
        throw new ApiError("unavailable", "The session state of this request's visitors kept changing under it (many requests on the same visitors at once); retry later", { retryAfterSeconds: 1 });
      }
      // Many writers on one visitor: spread the retries out (full jitter, capped at 64 ms).
      await new Promise((r) => setTimeout(r, Math.random() * 2 ** Math.min(attempt, 6)));
    }
  }

  /**
   * One try: read what the request's items need (#load), place every item (#place), and commit
   * every changed state with one compare-and-set. Undefined when another writer changed one of
   * the keys read meanwhile, "pending" when another instance's unsettled commit wrote one (nothing
   * is written then).
   */
  async #attempt(placements: readonly Placement[]): Promise<Assignment | undefined | "pending"> {
    const { vKeys, draft } = await this.#load(placements);
    const sessionIds = this.#place(placements, vKeys, draft);
    const { writes, changes, cancelled, aliases } = draft.outcome();
    // Sortable: time, then a counter (journal-recovery.ts takes entries back newest first; the
    // store reads the time as the commit's age, state-store.ts PENDING_CHECK). Unique
    // because each journal has one Sessionizer (one per process, compose-ingest.ts; the journal is
    // the instance's): two on one journal could name two commits alike within a millisecond.
    const journal = `${String(this.now()).padStart(15, "0")}-${String(++this.#journalSeq).padStart(12, "0")}`;
    const written = await this.store.commit(writes, STATE_TTL_MS, journal);
    if (written !== true) return written === "pending" ? "pending" : undefined;
    return { sessionIds, changes, cancelled, aliases, writes, journal };
  }

  /**
   * Reads the request's visitors' span lists, the sessions their items can go on, the sessions
   * merge markers point to, and the span lists of the visitors who own sessions named by id.
   * `vKeys[i]` is the visitor key of placement i when it has no session id (the 30-minute rule
   * applies to it), else undefined.
   */
  async #load(placements: readonly Placement[]): Promise<{ vKeys: Array<string | undefined>; draft: Draft }> {
    // Every key is built once and the same string used for every look-up (a string hashes once).
    const vKeys: Array<string | undefined> = new Array(placements.length);
    const visitorKeys = new Set<string>();
    const sessionKeys = new Set<string>();
    placements.forEach((p, i) => {
      if (p.sessionId) {
        sessionKeys.add(sessionKey(p.serviceId, p.sessionId));
        // The item's visitor's spans too: when the id is a server-made one sent back (a tracker
        // keeps the session route's answer), that is usually the session's own visitor, whose
        // spans the item moves (#place); read now, it needs no second read.
        visitorKeys.add(visitorKey(p.serviceId, p.visitorId));
        return;
      }
      visitorKeys.add((vKeys[i] = visitorKey(p.serviceId, p.visitorId)));
    });
    const loaded = await this.store.load([...visitorKeys]);
    // The sessions an item can go on: those whose span it is within 30 minutes of (a visitor can
    // have many spans in a back-fill; the others are not read). A span that an earlier item of
    // this request extends was matched by that item, so its state is among these.
    placements.forEach((p, i) => {
      const stored = vKeys[i] === undefined ? undefined : loaded.get(vKeys[i]!);
      if (!stored) return;
      for (const span of matchingSpans(stored.value as SessionSpan[], p.touch.time)) sessionKeys.add(sessionKey(p.serviceId, span.id));
    });
    let missing: string[] = [];
    for (const k of sessionKeys) if (!loaded.has(k)) missing.push(k);
    // A session merged into another left a marker naming it (a span list may still name the
    // merged session, e.g. one rebuilt from rows stored before the merge): load what they name.
    for (let round = 0; missing.length > 0 && round < MAX_HOPS; round++) {
      const more = new Set<string>();
      for (const [k, v] of await this.store.load(missing)) {
        loaded.set(k, v);
        const into = markerOf(v);
        if (into !== undefined) {
          const target = sessionKey(serviceOfKey(k), into);
          if (!loaded.has(target)) more.add(target);
        }
      }
      missing = [...more];
    }
    // The draft reads `loaded` itself, so what is loaded into it below is the draft's too.
    const draft = new Draft(loaded);
    // A server-made session named by its id is filed under its own visitor's spans (#place), which
    // the item's visitor id may not be: load those too.
    const ownersMissing = new Set<string>();
    for (const p of placements) {
      const state = p.sessionId ? draft.storedState(draft.resolveKey(p.serviceId, p.sessionId)) : undefined;
      if (!state || state.client) continue;
      const owner = visitorKey(p.serviceId, state.visitor_id);
      if (!loaded.has(owner)) ownersMissing.add(owner);
    }
    if (ownersMissing.size > 0) for (const [k, v] of await this.store.load([...ownersMissing])) loaded.set(k, v);
    return { vKeys, draft };
  }

  /** Places each item in time order, changing `draft`; answers each placement's session id, in input order. */
  #place(placements: readonly Placement[], vKeys: ReadonlyArray<string | undefined>, draft: Draft): string[] {
    // Time order, so the 30-minute rule sees items as they happened (stable for equal times).
    const order = placements.length === 1 ? [0] : placements.map((_, i) => i).sort((a, b) => placements[a]!.touch.time - placements[b]!.touch.time || a - b);
    const sessionIds: string[] = new Array(placements.length);
    const now = this.now();
    for (const i of order) {
      const p = placements[i]!;
      const svc = p.serviceId;
      const vKey = vKeys[i];
      let id = p.sessionId;
      /** The session key of the one session found (saves building it again). */
      let foundKey: string | undefined;
      if (!id) {
        // The sessions the visitor's spans within 30 minutes name now (a merged one stands for
        // the one it went into).
        const found: SessionState[] = [];
        for (const span of matchingSpans(draft.spansOf(vKey!), p.touch.time)) {
          const key = draft.resolveKey(svc, span.id);
          const state = draft.stateOf(key);
          if (state && !found.some((f) => f.session_id === state.session_id)) {
            found.push(state);
            foundKey = key;
          }
        }
        if (found.length === 0) {
          // A new session. (Spans whose state is gone — expired or evicted — name no session to
          // go on: reusing such an id would write a second version 1 of a session already stored,
          // or bring back one merged into another.)
          id = this.newId();
        } else {
          // The item is within 30 minutes of two sessions: they are one session now (API.md: the
          // idle rule compares item times). The one that started first absorbs the other.
          found.sort((a, b) => a.started_at - b.started_at || (a.session_id < b.session_id ? -1 : 1));
          let into = found[0]!;
          for (const other of found.slice(1)) {
            into = mergeSessions(into, other);
            draft.setState(sessionKey(svc, into.session_id), into);
            draft.mergeInto(sessionKey(svc, other.session_id), into.session_id);
          }
          id = into.session_id;
          if (found.length > 1) foundKey = undefined;
        }
      }
      // A given id names a session, or one a merge turned into an alias (a tracker keeps the id
      // the session route answered): the item goes on the session it went into, as that alias's
      // stored items are read (an audit: such an item opened a new session under the old id).
      const sKey = foundKey ?? (p.sessionId ? draft.resolveKey(svc, id) : sessionKey(svc, id));
      if (p.sessionId) id = sKey.slice(sessionKey(svc, "").length);
      const current = draft.stateOf(sKey);
      let next = current ? applyTouch(current, p.touch) : openSession(svc, id, p.visitorId, p.touch);
      if (!current && p.sessionId) next = { ...next, client: true };
      // A client-kept session's visitor is that of its first item (such a session can hold items
      // of several visitor ids). A session the service made stays the visitor's it was made for,
      // whoever sends items with its id, earlier ones too: its span is that visitor's window (a
      // re-audit: another visitor's earlier item took the session, and with it the window).
      if (current?.client && p.touch.time < current.started_at && next.visitor_id !== p.visitorId) next = { ...next, visitor_id: p.visitorId };
      draft.setState(sKey, next);
      // Client-kept sessions stay out of the visitor's spans: the 30-minute rule never joins them.
      // A server-made session named by the client (the session route's answer sent back) is still
      // its visitor's: its span, first to last item whoever sent them, follows the item, so that
      // visitor's next item without an id joins it within 30 minutes (an audit: one 5 minutes
      // later opened a new session). Filed under the session's visitor, as a restart files it.
      const spanKey = vKey ?? (current && !current.client ? visitorKey(svc, next.visitor_id) : undefined);
      if (spanKey) draft.setSpans(spanKey, updateSpans(draft.spansOf(spanKey), next, now, STATE_TTL_MS));
      sessionIds[i] = id;
    }
    // Items placed in a session that a later item of this request merged into another (a
    // client-kept session is never merged: its id stays).
    if (draft.merged()) placements.forEach((p, i) => (sessionIds[i] = draft.resolve(p.serviceId, sessionIds[i]!)));
    return sessionIds;
  }

  /** The assignment's rows are written (or its writes taken back): its journal entry can go. */
  settle(assignment: Assignment): Promise<void> {
    return this.store.settle(assignment.journal);
  }

  /**
   * Takes back what `assignment` committed, when its rows could not be written (a full spool, or
   * ClickHouse down with ACK_MODE=insert): the state must describe stored rows only, or the retry
   * would write a cancel row for a state never stored. One compare-and-set, and only if every key
   * still holds what the assignment wrote (nobody built on it meanwhile); false otherwise. Its
   * journal entry is settled with it (StateStore.takeBack: with no answer, once it lands).
   */
  async undo(assignment: Assignment): Promise<boolean> {
    return this.store.takeBack(assignment.writes, STATE_TTL_MS, assignment.journal);
  }
}

/** The service of a `v:` or `s:` key (service ids hold no ":"). */
function serviceOfKey(key: string): string {
  return key.slice(2, key.indexOf(":", 2));
}

/**
 * One attempt's view of the state: what was loaded, and what this request changed on top of it
 * (session states, span lists, sessions merged into another), until `outcome` turns the changes
 * into the compare-and-set's writes.
 */
class Draft {
  /** Sessions this request merged into another: session key → the id it went into. */
  private readonly redirects = new Map<string, string>();
  /** Span lists this request changed, by visitor key. */
  private readonly spans = new Map<string, SessionSpan[]>();
  /** Each session this request touches: its state as loaded, and as it is now (null: merged into another). */
  private readonly sessions = new Map<string, { before: SessionState | undefined; after: SessionState | null }>();

  constructor(private readonly loaded: Map<string, Stored | null>) {}

  /** The session key of what `id` stands for now: itself, or (after merges) the one it went into. */
  resolveKey(svc: string, id: string): string {
    let k = sessionKey(svc, id);
    for (let hops = 0; hops < MAX_REDIRECTS; hops++) {
      const into = this.redirects.get(k) ?? markerOf(this.loaded.get(k));
      if (into === undefined) return k;
      k = sessionKey(svc, into);
    }
    return k;
  }

  /** The session id `id` stands for now (resolveKey without the `s:<service>:` prefix). */
  resolve(svc: string, id: string): string {
    return this.resolveKey(svc, id).slice(sessionKey(svc, "").length);
  }

  /** The state loaded for a session key (undefined for none, or a merge marker). */
  storedState(key: string): SessionState | undefined {
    const stored = this.loaded.get(key);
    return stored && markerOf(stored) === undefined ? (stored.value as SessionState) : undefined;
  }

  /** A session's state as this request left it so far. */
  stateOf(key: string): SessionState | undefined {
    const known = this.sessions.get(key);
    return known ? known.after ?? undefined : this.storedState(key);
  }

  setState(key: string, next: SessionState): void {
    this.put(key, next);
  }

  /** The session at `key` went into session `into`: its key will hold a merge marker. */
  mergeInto(key: string, into: string): void {
    this.put(key, null);
    this.redirects.set(key, into);
  }

  private put(key: string, next: SessionState | null): void {
    const known = this.sessions.get(key);
    if (known) known.after = next;
    else this.sessions.set(key, { before: this.storedState(key), after: next });
  }

  /** Whether this request merged any session into another. */
  merged(): boolean {
    return this.redirects.size > 0;
  }

  spansOf(key: string): SessionSpan[] {
    return this.spans.get(key) ?? (this.loaded.get(key)?.value as SessionSpan[] | undefined) ?? [];
  }

  setSpans(key: string, list: SessionSpan[]): void {
    this.spans.set(key, list);
  }

  /**
   * The writes of every change, each expecting the value loaded for its key; with the sessions
   * changed (before and after), the stored states merged away (they get a cancel row), and the
   * aliases the merges made.
   */
  outcome(): Pick<Assignment, "writes" | "changes" | "cancelled" | "aliases"> {
    const writes: StateWrite[] = [];
    const changes: SessionChange[] = [];
    const cancelled: SessionState[] = [];
    const aliases: SessionAlias[] = [];
    for (const [key, change] of this.sessions) {
      const expected = this.loaded.get(key) ?? null;
      if (change.after === null) {
        writes.push({ key, expected, next: { merged_into: this.resolve(serviceOfKey(key), this.redirects.get(key)!) } satisfies MergedMarker });
        if (change.before) cancelled.push(change.before);
        continue;
      }
      const after = change.after;
      writes.push({ key, expected, next: after });
      changes.push({ before: change.before, after });
      if (after.merged && after.merged !== change.before?.merged) {
        const had = new Set(change.before?.merged ?? []);
        for (const alias of after.merged) {
          if (!had.has(alias)) aliases.push({ service_id: after.service_id, alias, canonical: after.session_id, version: after.version, started_at: after.started_at });
        }
      }
    }
    for (const [key, list] of this.spans) {
      const stored = this.loaded.get(key) ?? null;
      if (!sameSpans(list, (stored?.value as SessionSpan[] | undefined) ?? [])) writes.push({ key, expected: stored, next: list });
    }
    return { writes, changes, cancelled, aliases };
  }
}

/** What a merged session's key holds instead of a state: the session it went into. */
export interface MergedMarker {
  merged_into: string;
}

function markerOf(stored: Stored | null | undefined): string | undefined {
  const v = stored?.value as Partial<MergedMarker> | undefined;
  return v && typeof v.merged_into === "string" ? v.merged_into : undefined;
}

function sameSpans(a: readonly SessionSpan[], b: readonly SessionSpan[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!, y = b[i]!;
    if (x.id !== y.id || x.first !== y.first || x.last !== y.last) return false;
  }
  return true;
}
