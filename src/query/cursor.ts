// Keyset cursors for newest-first lists: the (time, id) of the last row returned. The next page
// holds rows strictly before it in (time DESC, id DESC) order, so rows that arrive later (newer
// times) never shift a page. Opaque to clients: base64url of a small JSON array that also names
// its list, so a cursor of one list is refused by the other (it used to page it from that time).
// It also carries the width of the first window the next page reads (newest-first.ts), a hint
// that changes how many reads a page takes, never which rows it holds; cursors made before the
// hint existed (no fourth element) still page, from the default first window. A session cursor
// also carries, for the walk's pages so far (the last MAX_PAGES of them), when each was read and
// its last row's start and CRC-32 of its id (fifth element, times as deltas), and the first four
// bytes of that id as a number (sixth element; they order ids as the list does): the next page
// leaves out the sessions one of them listed that have moved since (session-list.ts). Past 64
// pages, the older ones are kept in ClickHouse under a random id of the walk: the seventh element
// is [that id, how many pages are kept there].
import * as v from "valibot";
import { charCount, isWellFormed } from "../chars.ts";
import { ApiError } from "../errors.ts";
import { MAX_MS } from "../http/validate.ts";

/** Bytes that are not UTF-8 throw (toString would make them U+FFFD, an id no cursor was made with). */
const UTF8 = new TextDecoder("utf-8", { fatal: true });

/** Which list a cursor pages: the session list's ids are session ids, the event list's event ids. */
export type CursorList = "sessions" | "events";
const TAG: Record<CursorList, string> = { sessions: "s", events: "e" };
const Uuid = v.pipe(v.string(), v.uuid());
const validId: Record<CursorList, (id: string) => boolean> = {
  // A session id is 1-64 characters (API.md: code points, emoji too) of well-formed text; an event
  // id a UUID as stored.
  sessions: (id) => id.length >= 1 && id.length <= 128 && charCount(id) <= 64 && isWellFormed(id),
  events: (id) => v.is(Uuid, id),
};

export interface Keyset {
  /** Epoch ms of the last row. */
  t: number;
  id: string;
  /** Width (ms) of the next page's first window; absent: newest-first.ts's default. */
  w?: number;
  /**
   * Session lists: for each page of the walk so far, oldest first, [when it was read (the engine's
   * clock, epoch ms), its last row's start (epoch ms), CRC-32 of its last row's id, the first four
   * bytes of that id as a big-endian number (idPrefix)]. Absent in older cursors; the prefix is
   * absent (-1) in cursors made before 2026-11-30.
   */
  pages?: ReadonlyArray<PageMark>;
  /** Session lists past MAX_PAGES pages: the walk's id and how many of its first pages are stored under it. */
  walk?: WalkRef;
}

export interface WalkRef {
  id: string;
  stored: number;
}

export type PageMark = readonly [read: number, end: number, endIdCrc: number, endIdPrefix: number];

/**
 * The first four bytes of an id's UTF-8 (zeros past its end) as a big-endian number: ids whose
 * numbers differ order as the ids do (bytewise, as ClickHouse compares strings); equal numbers
 * leave the order open.
 */
export function idPrefix(id: string): number {
  const bytes = Buffer.alloc(4);
  Buffer.from(id, "utf8").copy(bytes, 0, 0, 4);
  return bytes.readUInt32BE(0);
}

/** How many pages a session cursor carries; older ones are stored in ClickHouse (session-list.ts). */
export const MAX_PAGES = 64;

/** The narrowest first window a cursor may ask for: smaller hints would only add empty reads. */
export const MIN_WINDOW_MS = 1000;

export function encodeCursor(list: CursorList, k: Keyset): string {
  const value: unknown[] = k.w === undefined ? [TAG[list], k.t, k.id] : [TAG[list], k.t, k.id, k.w];
  if (k.w !== undefined && k.pages !== undefined && k.pages.length > 0) {
    value.push(encodePages(k.pages));
    if (k.pages.every((mark) => mark[3] >= 0)) {
      value.push(k.pages.map((mark) => mark[3]));
      if (k.walk) value.push([k.walk.id, k.walk.stored]);
    }
  }
  return Buffer.from(JSON.stringify(value), "utf8").toString("base64url");
}

/** [read₁, end₁, crc₁, read₂ − read₁, end₁ − end₂, crc₂, …]: reads only grow and ends only fall. */
function encodePages(pages: ReadonlyArray<PageMark>): number[] {
  const [read, end, crc] = pages[0]!;
  const out = [read, end, crc];
  for (let i = 1; i < pages.length; i++) out.push(pages[i]![0] - pages[i - 1]![0], pages[i - 1]![1] - pages[i]![1], pages[i]![2]);
  return out;
}

function decodePages(value: unknown, prefixes: unknown): PageMark[] | undefined {
  if (!Array.isArray(value) || value.length < 3 || value.length > 3 * MAX_PAGES || value.length % 3 !== 0) return undefined;
  if (!value.every((x) => Number.isSafeInteger(x) && x >= 0)) return undefined;
  // One id prefix per page, or none (a cursor from before they were kept: -1, the order left open).
  if (prefixes !== undefined && !(Array.isArray(prefixes) && prefixes.length === value.length / 3 && prefixes.every((x) => Number.isSafeInteger(x) && x >= 0 && x <= 0xffffffff))) return undefined;
  const prefix = (i: number): number => (prefixes === undefined ? -1 : (prefixes as number[])[i]!);
  const pages: PageMark[] = [[value[0], value[1], value[2], prefix(0)]];
  for (let i = 3; i < value.length; i += 3) {
    const [read, end] = pages[pages.length - 1]!;
    pages.push([read + value[i], end - value[i + 1], value[i + 2], prefix(i / 3)]);
  }
  return pages.every(([read, end, crc]) => isTime(read) && isTime(end) && crc <= 0xffffffff) ? pages : undefined;
}

/** [walk id (a UUID), pages stored under it (1 or more)]. */
function decodeWalk(value: unknown): WalkRef | undefined {
  if (!Array.isArray(value) || value.length !== 2) return undefined;
  const [id, stored] = value as unknown[];
  if (typeof id !== "string" || !v.is(Uuid, id) || !Number.isSafeInteger(stored) || (stored as number) < 1 || (stored as number) > 0xffffffff) return undefined;
  return { id, stored: stored as number };
}

/** Epoch ms within the query routes' bound on times. */
function isTime(x: unknown): x is number {
  return Number.isSafeInteger(x) && (x as number) >= 0 && (x as number) < MAX_MS;
}

/** Decodes a cursor of `list`; anything encodeCursor did not make for that list is a 400 naming `cursor`. */
export function decodeCursor(list: CursorList, cursor: string | undefined): Keyset | undefined {
  if (cursor === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(UTF8.decode(Buffer.from(cursor, "base64url")));
    const longest = list === "sessions" ? 7 : 4;
    if (
      Array.isArray(value) && value.length >= 3 && value.length <= longest && value[0] === TAG[list] &&
      isTime(value[1]) && typeof value[2] === "string" && validId[list](value[2])
    ) {
      if (value.length === 3) return { t: value[1], id: value[2] };
      const w: unknown = value[3];
      if (typeof w === "number" && Number.isSafeInteger(w) && w >= MIN_WINDOW_MS && w <= MAX_MS) {
        if (value.length === 4) return { t: value[1], id: value[2], w };
        const pages = decodePages(value[4], value[5]);
        if (pages && value.length === 7) {
          const walk = decodeWalk(value[6]);
          if (walk) return { t: value[1], id: value[2], w, pages, walk };
        } else if (pages) return { t: value[1], id: value[2], w, pages };
      }
    }
  } catch {
    // fall through to the 400
  }
  const message = "not a cursor from this API (pass next_cursor unchanged)";
  throw new ApiError("invalid_query", `cursor: ${message}`, { issues: [{ path: "cursor", message }] });
}
