// Keyset cursors for newest-first lists: the (time, id) of the last row returned. The next page
// holds rows strictly before it in (time DESC, id DESC) order, so rows that arrive later (newer
// times) never shift a page. Opaque to clients: base64url of a small JSON array that also names
// its list, so a cursor of one list is refused by the other (it used to page it from that time).
// It also carries the width of the first window the next page reads (newest-first.ts), a hint
// that changes how many reads a page takes, never which rows it holds; cursors made before the
// hint existed (no fourth element) still page, from the default first window.
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
}

/** The narrowest first window a cursor may ask for: smaller hints would only add empty reads. */
export const MIN_WINDOW_MS = 1000;

export function encodeCursor(list: CursorList, k: Keyset): string {
  const value = k.w === undefined ? [TAG[list], k.t, k.id] : [TAG[list], k.t, k.id, k.w];
  return Buffer.from(JSON.stringify(value), "utf8").toString("base64url");
}

/** Decodes a cursor of `list`; anything encodeCursor did not make for that list is a 400 naming `cursor`. */
export function decodeCursor(list: CursorList, cursor: string | undefined): Keyset | undefined {
  if (cursor === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(UTF8.decode(Buffer.from(cursor, "base64url")));
    if (
      Array.isArray(value) && (value.length === 3 || value.length === 4) && value[0] === TAG[list] &&
      Number.isSafeInteger(value[1]) && value[1] >= 0 && value[1] < MAX_MS && // the query routes' bound on times
      typeof value[2] === "string" && validId[list](value[2])
    ) {
      if (value.length === 3) return { t: value[1], id: value[2] };
      const w: unknown = value[3];
      if (typeof w === "number" && Number.isSafeInteger(w) && w >= MIN_WINDOW_MS && w <= MAX_MS) return { t: value[1], id: value[2], w };
    }
  } catch {
    // fall through to the 400
  }
  const message = "not a cursor from this API (pass next_cursor unchanged)";
  throw new ApiError("invalid_query", `cursor: ${message}`, { issues: [{ path: "cursor", message }] });
}
