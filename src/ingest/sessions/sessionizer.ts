// Assigns every item to a session and computes the session's new state, for a whole request at
// once: read the visitors' recent sessions, place each item (in time order), then write every
// changed state back with one compare-and-set. The result also says which session rows to write:
// a cancel row for each session's previous state and a row for its new state.
import {
  applyTouch, findSpan, openSession, updateSpans,
  type SessionSpan, type SessionState, type Touch,
} from "./session-state.ts";
import type { StateStore, StateWrite } from "./state-store.ts";

/** One item to place: whose it is, and what it does to its session. */
export interface Placement {
  serviceId: string;
  visitorId: string;
  /** The client's own session id: it always wins over the 30-minute rule. */
  sessionId?: string;
  /** The visitor's id under yesterday's salt (items just after UTC midnight): its session may go on. */
  previousVisitorId?: string;
  touch: Touch;
}

export interface SessionChange {
  before: SessionState | undefined;
  after: SessionState;
}

export interface Assignment {
  /** The session id of each placement, in input order. */
  sessionIds: string[];
  /** Sessions this request changed, with their state before and after. */
  changes: SessionChange[];
}

/** Keep session state this long after its last change (late and back-filled items find it). */
export const STATE_TTL_MS = 2 * 60 * 60 * 1000;
const MAX_ATTEMPTS = 16;

const visitorKey = (svc: string, visitor: string) => `v:${svc}:${visitor}`;
const sessionKey = (svc: string, session: string) => `s:${svc}:${session}`;

export class Sessionizer {
  constructor(
    private readonly store: StateStore,
    private readonly newId: () => string = () => crypto.randomUUID(),
  ) {}

  /** Places every item; retries when another instance changed the same visitors meanwhile. */
  async assign(placements: readonly Placement[]): Promise<Assignment> {
    for (let attempt = 1; ; attempt++) {
      const result = await this.#attempt(placements);
      if (result) return result;
      if (attempt >= MAX_ATTEMPTS) throw new Error("session state kept changing under this request");
      // Many writers on one visitor: spread the retries out (full jitter, capped at 64 ms).
      await new Promise((r) => setTimeout(r, Math.random() * 2 ** Math.min(attempt, 6)));
    }
  }

  async #attempt(placements: readonly Placement[]): Promise<Assignment | undefined> {
    // Every key is built once and the same string used for every look-up (a string hashes once).
    const vKeys: Array<string | undefined> = new Array(placements.length);
    const previousKeys: Array<string | undefined> = new Array(placements.length);
    const visitorKeys = new Set<string>();
    const sessionKeys = new Set<string>();
    placements.forEach((p, i) => {
      if (p.sessionId) {
        sessionKeys.add(sessionKey(p.serviceId, p.sessionId));
        return;
      }
      visitorKeys.add((vKeys[i] = visitorKey(p.serviceId, p.visitorId)));
      if (p.previousVisitorId) visitorKeys.add((previousKeys[i] = visitorKey(p.serviceId, p.previousVisitorId)));
    });
    const loaded = await this.store.load([...visitorKeys]);
    for (const [key, stored] of loaded) {
      if (!stored) continue;
      const svc = key.slice(2, key.indexOf(":", 2));
      for (const span of stored.value as SessionSpan[]) sessionKeys.add(sessionKey(svc, span.id));
    }
    const missing: string[] = [];
    for (const k of sessionKeys) if (!loaded.has(k)) missing.push(k);
    if (missing.length > 0) for (const [k, v] of await this.store.load(missing)) loaded.set(k, v);

    const spans = new Map<string, SessionSpan[]>();
    const spansOf = (key: string): SessionSpan[] => spans.get(key) ?? (loaded.get(key)?.value as SessionSpan[] | undefined) ?? [];
    /** Each session this request touches: its state as loaded, and as it is now. */
    const sessions = new Map<string, { before: SessionState | undefined; after: SessionState }>();

    // Time order, so the 30-minute rule sees items as they happened (stable for equal times).
    const order = placements.length === 1 ? [0] : placements.map((_, i) => i).sort((a, b) => placements[a]!.touch.time - placements[b]!.touch.time || a - b);
    const sessionIds: string[] = new Array(placements.length);
    for (const i of order) {
      const p = placements[i]!;
      const vKey = vKeys[i];
      let id = p.sessionId;
      let previousKey: string | undefined;
      if (!id) {
        id = findSpan(spansOf(vKey!), p.touch.time)?.id;
        const key = previousKeys[i];
        if (!id && key) {
          // Just after UTC midnight the visitor id changed with the salt; the visit did not.
          id = findSpan(spansOf(key), p.touch.time)?.id;
          if (id) previousKey = key;
        }
        id ??= this.newId();
      }
      const sKey = sessionKey(p.serviceId, id);
      const known = sessions.get(sKey);
      const current = known ? known.after : (loaded.get(sKey)?.value as SessionState | undefined);
      const next = current ? applyTouch(current, p.touch) : openSession(p.serviceId, id, p.visitorId, p.touch);
      if (known) known.after = next;
      else sessions.set(sKey, { before: current, after: next });
      // Client-kept sessions stay out of the visitor's spans: the 30-minute rule never joins them.
      if (vKey) {
        spans.set(vKey, updateSpans(spansOf(vKey), next));
        if (previousKey) spans.set(previousKey, updateSpans(spansOf(previousKey), next));
      }
      sessionIds[i] = id;
    }

    const writes: StateWrite[] = [];
    const changes: SessionChange[] = [];
    for (const [key, change] of sessions) {
      writes.push({ key, expected: loaded.get(key) ?? null, next: change.after });
      changes.push(change);
    }
    for (const [key, list] of spans) {
      const stored = loaded.get(key) ?? null;
      if (!sameSpans(list, (stored?.value as SessionSpan[] | undefined) ?? [])) writes.push({ key, expected: stored, next: list });
    }
    if (!(await this.store.commit(writes, STATE_TTL_MS))) return undefined;
    return { sessionIds, changes };
  }
}

function sameSpans(a: readonly SessionSpan[], b: readonly SessionSpan[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!, y = b[i]!;
    if (x.id !== y.id || x.first !== y.first || x.last !== y.last) return false;
  }
  return true;
}
