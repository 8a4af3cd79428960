// Where session state lives between requests: in Valkey when configured, so several service
// instances behind a load balancer agree on every visitor's session, and in process otherwise.
// Writes are compare-and-set over a group of keys: a request's changes land only if nobody else
// changed those keys since it read them; otherwise it reads again and recomputes.
import type Redis from "ioredis";
import { BoundedMap } from "../../memo.ts";

export interface StateStore {
  /**
   * Current values of `keys` (null when absent). A value is shared with the store and with later
   * loads: never mutate one (transitions build new objects).
   */
  load(keys: readonly string[]): Promise<Map<string, Stored | null>>;
  /**
   * Writes every entry iff each key still holds `expected`; false when another writer won. With
   * `journal`, a store shared across processes also records the writes under that name, in the
   * same atomic step, until `settle(journal)`: what a restart takes back if its rows never got
   * written (see journal-recovery.ts). "pending" (nothing written): a key holds a value that
   * another instance's commit wrote and has not settled yet (its rows may not be written; see
   * PENDING_MAX_AGE_MS).
   */
  commit(entries: readonly StateWrite[], ttlMs: number, journal?: string): Promise<boolean | "pending">;
  /** Forgets journal entry `journal`: its rows are written, or its writes were taken back. */
  settle(journal: string): Promise<void>;
  /**
   * Undoes a commit of `entries` that returned true (its rows were not written): each key goes back
   * to its `expected` value iff every key still holds the commit's `next` (otherwise another writer
   * built on it and it stays); false when it stays. Settles `journal` either way. A shared store
   * that gets no answer tries again until it lands, and only while the commit's journal entry is
   * there (so a late try never undoes a later commit that wrote the same values), then throws.
   */
  takeBack(entries: readonly StateWrite[], ttlMs: number, journal?: string): Promise<boolean>;
  /**
   * Writes each entry whose key is absent and leaves the others as they are, or, for an entry with
   * `merge`, writes what it makes of the present value (a compare-and-set per key; no group
   * atomicity): how a warm-up puts back state that live writers may already have replaced.
   * Returns how many it wrote.
   */
  seed(entries: readonly SeedEntry[], ttlMs: number): Promise<number>;
}

export interface SeedEntry {
  key: string;
  /** JSON-serializable, never null. */
  value: unknown;
  /**
   * When the key is present (live traffic wrote it since the state was lost): the value to write
   * instead, from the present one (undefined: leave it). Without it the present value stays.
   */
  merge?: (present: unknown) => unknown;
}

/** A value as one load saw it; a compare-and-set expects exactly this read (not an equal value). */
export interface Stored {
  readonly value: unknown;
}

export interface StateWrite {
  key: string;
  /** What load returned for the key (null: it was absent). */
  expected: Stored | null;
  /** The new value (JSON-serializable); null deletes the key. */
  next: unknown;
}

/**
 * In-process store: a map with per-entry expiry and a size cap (the least recently written
 * entries go first). Values are kept as objects (no JSON on either side); an entry object is what
 * a load hands out, so the compare-and-set compares identities.
 */
export function memoryStateStore(
  opts: { maxEntries?: number; now?: () => number; /** Told of each entry the cap pushed out before it expired. */ onEvicted?: () => void } = {},
): StateStore & { size(): number } {
  const now = opts.now ?? Date.now;
  const onEvicted = opts.onEvicted;
  // Written order (a write counts as a use, a read does not): a linked-list LRU, not Map
  // re-insertion, whose deletions leave tombstones that JSC's Map then rehashes and walks.
  const map = new BoundedMap<string, { value: unknown; expiresAt: number }>(
    opts.maxEntries ?? 2_000_000,
    onEvicted && ((_key, entry) => entry.expiresAt > now() && onEvicted()),
  );
  const read = (key: string, at: number) => {
    const entry = map.peek(key);
    if (!entry) return null;
    if (entry.expiresAt <= at) {
      map.delete(key);
      return null;
    }
    return entry;
  };
  return {
    size: () => map.size,
    async load(keys) {
      const at = now();
      const out = new Map<string, Stored | null>();
      for (const k of keys) out.set(k, read(k, at));
      return out;
    },
    async commit(entries, ttlMs) {
      // No await between the checks and the writes: in one process this is atomic.
      const at = now();
      for (const e of entries) if (read(e.key, at) !== e.expected) return false;
      const expiresAt = at + ttlMs;
      for (const e of entries) {
        if (e.next === null) map.delete(e.key);
        else map.set(e.key, { value: frozen(e.next), expiresAt });
      }
      return true;
    },
    // State in process dies with the process: nothing to take back after a crash.
    async settle() {},
    async takeBack(entries, ttlMs) {
      const at = now();
      for (const e of entries) if ((read(e.key, at)?.value ?? null) !== e.next) return false;
      const expiresAt = at + ttlMs;
      for (const e of entries) {
        if (e.expected === null) map.delete(e.key);
        else map.set(e.key, { value: e.expected.value, expiresAt });
      }
      return true;
    },
    async seed(entries, ttlMs) {
      const at = now();
      const expiresAt = at + ttlMs;
      let written = 0;
      for (const e of entries) {
        const present = read(e.key, at);
        const value = present === null ? e.value : e.merge?.(present.value);
        if (value === undefined) continue;
        map.set(e.key, { value: frozen(value), expiresAt });
        written++;
      }
      return written;
    },
  };
}

/**
 * Stored values are shared with every later reader (and the compare-and-set compares identities),
 * so they must never change: frozen, nested objects too, a mutation throws.
 */
function frozen<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    for (const inner of Object.values(value)) frozen(inner);
    Object.freeze(value);
  }
  return value;
}

const NIL = "\u0000nil";
/**
 * A journaled commit writes each value as its JSON, then TAG, the journal hash, TAG and the journal
 * field: the tag names the commit, so another instance can tell a state whose rows may not be
 * written yet (its record still in that journal). JSON.stringify never writes a raw U+0001.
 */
const TAG = "\u0001";
/** The JSON of a stored text (without the tag of the commit that wrote it). */
export function stateJson(text: string): string {
  const at = text.indexOf(TAG);
  return at < 0 ? text : text.slice(0, at);
}
/**
 * How long another instance's unsettled commit holds up the keys it wrote. Past it, the instance
 * that wrote it is taken for gone for good (its data directory lost): its state is built on as it
 * is, and its rows may be missing (the README's multi-instance limit). The same time as a pending
 * event-id claim's (dedup.ts).
 */
export const PENDING_MAX_AGE_MS = 60_000;
/** Compare-and-set tries of one seeded merge before it leaves the key to the live writers. */
const MERGE_ATTEMPTS = 5;
/**
 * Lua, with `n` set: returns 0 unless each of KEYS[1..n] holds ARGV[1..n] (NIL: absent); then
 * writes ARGV[n+1..2n] (NIL deletes) with the TTL ARGV[2n+1] in ms.
 */
const COMPARE_AND_WRITE = `
for i = 1, n do
  local cur = redis.call('GET', KEYS[i])
  if cur == false then cur = '${NIL}' end
  if cur ~= ARGV[i] then return 0 end
end
for i = 1, n do
  if ARGV[n + i] == '${NIL}' then redis.call('DEL', KEYS[i])
  else redis.call('SET', KEYS[i], ARGV[n + i], 'PX', ARGV[2 * n + 1]) end
end`;

/**
 * Lua, in the journaled compare-and-set: returns 2 when a key holds its expected text and that text
 * was written by another instance's commit (another journal hash, KEYS[n+1] being this one's) whose
 * record is still in that instance's journal and is younger than ARGV[2n+4] ms (the field begins
 * with the commit's time in ms, 15 digits: Sessionizer; measured by Valkey's clock).
 * Such a commit's rows may never have been written (that instance stopped between its commit and
 * its spool write): building on it would write a cancel row for a state never stored and count its
 * items again. Its own instance settles it within milliseconds, or takes it back at restart.
 * (The journal hash it reads is not among KEYS: one Valkey, not a cluster.)
 */
const PENDING_CHECK = `
for i = 1, n do
  local cur = redis.call('GET', KEYS[i])
  local a = cur and string.find(cur, '\\1', 1, true)
  if a and cur == ARGV[i] then
    local b = string.find(cur, '\\1', a + 1, true)
    local hash = b and string.sub(cur, a + 1, b - 1)
    if hash and hash ~= KEYS[n + 1] then
      local field = string.sub(cur, b + 1)
      local t = redis.call('TIME')
      local age = (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) - (tonumber(string.sub(field, 1, 15)) or 0)
      if age < tonumber(ARGV[2 * n + 4]) and redis.call('HEXISTS', hash, field) == 1 then return 2 end
    end
  end
end`;

/**
 * Compare-and-set over KEYS[1..n]: ARGV[1..n] the texts expected, ARGV[n+1..2n] the texts to write,
 * ARGV[2n+1] the TTL. Journaled, the last key is the journal hash and ARGV[2n+2], ARGV[2n+3] the
 * field and the record written there in the same step, ARGV[2n+4] the pending check's age (above); a
 * journaled commit writes its values tagged (TAG) and answers 2 for a key another instance's
 * unsettled commit wrote; a journaled commit whose record is already
 * there ran before (ioredis re-sent it after a reconnect, valkey-client.ts) and answers 1 again
 * without writing (its compare would fail against its own writes, and the sessionizer would then
 * apply its items a second time: a test saw 3 page views for 2).
 */
function casScript(journaled: boolean): string {
  if (!journaled) return `local n = #KEYS${COMPARE_AND_WRITE}\nreturn 1`;
  return `
local n = #KEYS - 1
if redis.call('HGET', KEYS[n + 1], ARGV[2 * n + 2]) == ARGV[2 * n + 3] then return 1 end${PENDING_CHECK}${COMPARE_AND_WRITE}
redis.call('HSET', KEYS[n + 1], ARGV[2 * n + 2], ARGV[2 * n + 3])
return 1`;
}
const CAS_SCRIPT = casScript(false);
const CAS_JOURNAL_SCRIPT = casScript(true);

/**
 * The reverse of a journaled commit that got no answer, in the commit's own terms (KEYS: its keys
 * and the journal hash; ARGV: its texts written, its texts expected, TTL, journal field, record).
 * Only while the commit's record is in the journal (it ran and was not taken back yet): so it can
 * be tried again until it lands, and a try that comes late never undoes a later commit that wrote
 * the same texts (a client's retry of the same items does). Puts the texts back iff every key still
 * holds what the commit wrote; drops the record either way (built on since: it stays).
 */
const REVERSE_JOURNAL_SCRIPT = `
local n = #KEYS - 1
if redis.call('HGET', KEYS[n + 1], ARGV[2 * n + 2]) ~= ARGV[2 * n + 3] then return 0 end
redis.call('HDEL', KEYS[n + 1], ARGV[2 * n + 2])${COMPARE_AND_WRITE}
return 1`;

/** A journaled commit to take back: its prefixed keys, texts written and expected, TTL, journal field and record. */
interface Reverse {
  keys: readonly string[];
  texts: readonly string[];
  expected: readonly string[];
  ttlMs: number;
  journal: string;
  record: string;
}

/** How often reverses that got no answer are tried again, and at most how many are kept. */
const REVERSE_RETRY_MS = 500;
const MAX_REVERSES = 10_000;

/**
 * One journaled compare-and-set: the keys it wrote (without the store's prefix) and each key's
 * text before and after (null: absent).
 */
export interface JournalEntry {
  id: string;
  keys: string[];
  before: Array<string | null>;
  after: Array<string | null>;
}

/** A Valkey state store with a journal: what a restarted instance reads back (journal-recovery.ts). */
export interface JournaledStateStore extends StateStore {
  /** Every entry not settled yet, oldest first. */
  journaled(): Promise<JournalEntry[]>;
  /** Whether every key of `entry` still holds the text the entry wrote. */
  holds(entry: JournalEntry): Promise<boolean>;
  /** Puts each key of `entry` back to its text before, iff every key still holds its text after. */
  rollBack(entry: JournalEntry, ttlMs: number): Promise<boolean>;
}

/** What a Valkey load saw: the value and the exact text it was parsed from (what CAS compares). */
interface ValkeyStored extends Stored {
  readonly text: string;
}

/**
 * Valkey store: MGET to read, one Lua script to compare-and-set a group of keys atomically; values
 * are JSON text there. Texts are parsed once: the last value of each key is remembered with its
 * text (also what this instance just wrote), and a load that reads the same text reuses it.
 * `journal` names this instance's journal hash (one per instance: see journal-recovery.ts); without
 * it, commits are not journaled.
 */
export function valkeyStateStore(
  redis: Redis,
  prefix = "analytics:sess:",
  opts: { remembered?: number; journal?: string; /** PENDING_MAX_AGE_MS unless set (tests). */ pendingMaxAgeMs?: number } = {},
): JournaledStateStore {
  const known = new BoundedMap<string, ValkeyStored>(opts.remembered ?? 50_000);
  const journalKey = opts.journal;
  const pendingMaxAgeMs = String(opts.pendingMaxAgeMs ?? PENDING_MAX_AGE_MS);
  const text = (t: string | null) => t ?? NIL;
  /** A commit's prefixed keys, its texts to write and expected (NIL: absent), and its journal record ("" without a journal). */
  const asTexts = (entries: readonly StateWrite[], journal: string | undefined) => {
    // Journaled, each value carries the commit's tag (TAG, PENDING_CHECK).
    const tag = journal !== undefined && journalKey !== undefined ? `${TAG}${journalKey}${TAG}${journal}` : "";
    const texts = entries.map((e) => (e.next === null ? NIL : JSON.stringify(e.next) + tag));
    const expected = entries.map((e) => (e.expected as ValkeyStored | null)?.text ?? NIL);
    const record =
      journal !== undefined && journalKey !== undefined
        ? JSON.stringify({ keys: entries.map((e) => e.key), before: expected.map((t) => (t === NIL ? null : t)), after: texts.map((t) => (t === NIL ? null : t)) })
        : "";
    return { keys: entries.map((e) => prefix + e.key), texts, expected, record };
  };
  /** The compare-and-set over prefixed `keys`: each holds its `expected` text → write its `next` text (NIL: absent / delete). */
  const cas = async (keys: readonly string[], expected: readonly string[], next: readonly string[], ttlMs: number) =>
    (await redis.eval(CAS_SCRIPT, keys.length, ...keys, ...expected, ...next, String(ttlMs))) === 1;
  /** seed's merge of a present key: read, merge, compare-and-set; again (a few times) when a live writer came between. */
  const mergeInto = async (e: SeedEntry, ttlMs: number): Promise<boolean> => {
    for (let attempt = 0; attempt < MERGE_ATTEMPTS; attempt++) {
      const current = await redis.get(prefix + e.key);
      const value = current === null ? e.value : e.merge!(JSON.parse(stateJson(current)));
      if (value === undefined) return false;
      const next = JSON.stringify(value);
      if (current !== null && next === stateJson(current)) return false;
      if (await cas([prefix + e.key], [current ?? NIL], [next], ttlMs)) {
        known.delete(e.key);
        return true;
      }
    }
    return false;
  };
  // Reverses that got no answer (Valkey gone or restarting): tried again every REVERSE_RETRY_MS and
  // as soon as the connection is back (ioredis first re-sends what was unanswered, the commit
  // among it, then emits "ready": a reverse sent then runs after its commit, before the next
  // request's reads). Were one dropped, a commit that ran, or was re-sent and ran late, would keep
  // the refused request's items in the session, and its client's retry would add them again.
  const unreversed = new Map<string, Reverse>();
  // Settles that got no answer, tried again with the reverses: an entry left in the journal holds
  // up other instances' commits on its keys (PENDING_CHECK) until it is PENDING_MAX_AGE_MS old.
  const unsettled = new Set<string>();
  let reverseTimer: ReturnType<typeof setTimeout> | undefined;
  /** Runs the reverse of a journaled commit; true when it put the keys back. Kept for a retry when it gets no answer. */
  const reverse = async (r: Reverse) => {
    try {
      return (await redis.eval(REVERSE_JOURNAL_SCRIPT, r.keys.length + 1, ...r.keys, journalKey!, ...r.texts, ...r.expected, String(r.ttlMs), r.journal, r.record)) === 1;
    } catch (err) {
      reverseLater(r);
      throw err;
    }
  };
  const retryReverses = () => {
    if (reverseTimer !== undefined) clearTimeout(reverseTimer);
    reverseTimer = undefined;
    // A client closed for good (shutdown) never answers again; the next start's journal recovery takes them back.
    if (redis.status === "end") return void (unreversed.clear(), unsettled.clear());
    const due = [...unreversed.values()];
    unreversed.clear();
    for (const r of due) void reverse(r).catch(() => undefined);
    const settles = [...unsettled];
    unsettled.clear();
    for (const id of settles) void settle(id).catch(() => undefined);
  };
  const retryLater = () => {
    if (reverseTimer === undefined) {
      reverseTimer = setTimeout(retryReverses, REVERSE_RETRY_MS);
      reverseTimer.unref?.();
    }
  };
  const reverseLater = (r: Reverse) => {
    unreversed.set(r.journal, r);
    for (const id of unreversed.keys()) {
      if (unreversed.size <= MAX_REVERSES) break;
      unreversed.delete(id);
    }
    retryLater();
  };
  const settle = async (journal: string) => {
    if (journalKey === undefined) return;
    try {
      await redis.hdel(journalKey, journal);
    } catch (err) {
      if (unsettled.size < MAX_REVERSES) unsettled.add(journal);
      retryLater();
      throw err;
    }
  };
  if (journalKey !== undefined) redis.on("ready", () => (unreversed.size > 0 || unsettled.size > 0) && retryReverses());
  return {
    async load(keys) {
      const out = new Map<string, Stored | null>();
      if (keys.length === 0) return out;
      const texts = await redis.mget(...keys.map((k) => prefix + k));
      keys.forEach((k, i) => {
        const text = texts[i] ?? null;
        if (text === null) return void out.set(k, null);
        let stored = known.get(k);
        if (stored === undefined || stored.text !== text) {
          stored = { value: JSON.parse(stateJson(text)), text };
          known.set(k, stored);
        }
        out.set(k, stored);
      });
      return out;
    },
    async commit(entries, ttlMs, journal) {
      if (entries.length === 0) return true;
      const { keys, texts, expected, record } = asTexts(entries, journal);
      const args = [...expected, ...texts, String(ttlMs)];
      const journaled = journal !== undefined && journalKey !== undefined;
      let ok: boolean;
      try {
        if (journaled) {
          const answer = await redis.eval(CAS_JOURNAL_SCRIPT, keys.length + 1, ...keys, journalKey, ...args, journal, record, pendingMaxAgeMs);
          if (answer === 2) return "pending";
          ok = answer === 1;
        } else {
          ok = await cas(keys, expected, texts, ttlMs);
        }
      } catch (err) {
        // No answer (the client's command timeout, Valkey paused or busy, or the connection
        // dropped): the script may still run once Valkey catches up, or when ioredis re-sends it
        // after reconnecting, and the request is refused, so its writes must not stay. The reverse
        // goes right behind it on this connection (Valkey runs one client's commands in order): it
        // takes the writes back if they landed, and changes nothing if they did not, or if another
        // writer built on them since. Not waited for: the 503 need not wait for a Valkey that is
        // not answering (a durability audit: a session counted the refused request's items, 10 in
        // 5,000 after ten 1–1.5 s pauses). Journaled, it is tried again until it lands.
        for (const e of entries) known.delete(e.key);
        if (journaled) void reverse({ keys, texts, expected, ttlMs, journal, record }).catch(() => undefined);
        else void cas(keys, texts, expected, ttlMs).catch(() => undefined);
        throw err;
      }
      if (ok) {
        entries.forEach((e, i) => {
          if (e.next === null) known.delete(e.key);
          else known.set(e.key, { value: e.next, text: texts[i]! });
        });
      }
      return ok;
    },
    settle,
    async takeBack(entries, ttlMs, journal) {
      if (entries.length === 0) return true;
      for (const e of entries) known.delete(e.key);
      const { keys, texts, expected, record } = asTexts(entries, journal);
      if (journal === undefined || journalKey === undefined) return cas(keys, texts, expected, ttlMs);
      return reverse({ keys, texts, expected, ttlMs, journal, record });
    },
    async seed(entries, ttlMs) {
      let written = 0;
      for (let i = 0; i < entries.length; i += 1000) {
        const part = entries.slice(i, i + 1000);
        const texts = part.map((e) => JSON.stringify(e.value));
        const pipeline = redis.pipeline();
        part.forEach((e, k) => pipeline.set(prefix + e.key, texts[k]!, "PX", ttlMs, "NX"));
        const replies = (await pipeline.exec()) ?? [];
        const present: SeedEntry[] = [];
        replies.forEach(([err, reply], k) => {
          if (err) throw err;
          if (reply !== "OK") {
            if (part[k]!.merge) present.push(part[k]!);
            return;
          }
          written++;
          known.set(part[k]!.key, { value: part[k]!.value, text: texts[k]! });
        });
        for (const e of present) if (await mergeInto(e, ttlMs)) written++;
      }
      return written;
    },
    async journaled() {
      if (journalKey === undefined) return [];
      const all = await redis.hgetall(journalKey);
      return Object.entries(all)
        .map(([id, json]) => ({ id, ...(JSON.parse(json) as Omit<JournalEntry, "id">) }))
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    },
    async holds(entry) {
      if (entry.keys.length === 0) return false;
      const now = await redis.mget(...entry.keys.map((k) => prefix + k));
      return now.every((t, i) => t === entry.after[i]);
    },
    async rollBack(entry, ttlMs) {
      if (entry.keys.length === 0) return true;
      for (const k of entry.keys) known.delete(k);
      return cas(entry.keys.map((k) => prefix + k), entry.after.map(text), entry.before.map(text), ttlMs);
    },
  };
}
