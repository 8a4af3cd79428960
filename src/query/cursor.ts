// Keyset cursors for newest-first lists: the (time, id) of the last row returned. The next page
// holds rows strictly before it in (time DESC, id DESC) order, so rows that arrive later (newer
// times) never shift a page. Opaque to clients: base64url of a small JSON array.
import { ApiError } from "../errors.ts";

export interface Keyset {
  /** Epoch ms of the last row. */
  t: number;
  id: string;
}

export function encodeCursor(k: Keyset): string {
  return Buffer.from(JSON.stringify([k.t, k.id]), "utf8").toString("base64url");
}

/** Decodes a cursor; anything not made by encodeCursor is a 400 naming `cursor`. */
export function decodeCursor(cursor: string | undefined): Keyset | undefined {
  if (cursor === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
    if (Array.isArray(value) && value.length === 2 && Number.isSafeInteger(value[0]) && value[0] >= 0 && typeof value[1] === "string" && value[1].length <= 128) {
      return { t: value[0], id: value[1] };
    }
  } catch {
    // fall through to the 400
  }
  const message = "not a cursor from this API (pass next_cursor unchanged)";
  throw new ApiError("invalid_query", `cursor: ${message}`, { issues: [{ path: "cursor", message }] });
}
