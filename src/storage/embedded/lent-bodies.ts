// Insert bodies lent to the in-process engine by reference. client-web takes insert data only as
// text, so a flush's JSONEachRow bytes (already the exact body) would be decoded into a string,
// joined by client-web, encoded again by `new Request` and read back by the handler: three copies
// of every flushed byte on the JS thread, most of the insert's synchronous time (577 of 657 ms in a
// profile of the long event-loop stalls; bench/RESULTS.md, 2026-11-29 05:59). With the embedded
// engine the bytes stay where they are: the client's stringify hands client-web a short token
// instead of the text, and the in-process fetch (http-handler.ts) swaps the token back for the
// bytes. Everything else about the request (query, settings, query id, timeout, error mapping)
// still goes through client-web.
//
// Tokens are only ever looked up for bodies that the in-process fetch receives as a string from
// this process's own client; a request from the network (`npm run clickhouse`) arrives as a
// `Request` and never reaches `claim`.

/** Rows that are already JSONEachRow text (one object per line, each line ending in "\n"). */
export class JsonEachRowBytes {
  /** Set while the bytes are lent (between the client's stringify and the fetch that claims them). */
  token: string | undefined;
  constructor(readonly bytes: Uint8Array) {}
}

// Unguessable per process, and starts with a character no JSON row text starts with.
const PREFIX = `\u0000lent-body:${crypto.randomUUID()}:`;
const lent = new Map<string, Uint8Array>();
let next = 0;

/** Lends `rows`' bytes; returns the token client-web sends in their place. */
export function lend(rows: JsonEachRowBytes): string {
  const token = `${PREFIX}${next++}`;
  lent.set(token, rows.bytes);
  rows.token = token;
  return token;
}

/**
 * The bytes a request body names, taken back (each token is claimed once). `undefined` when the
 * body is not a token. client-web appends "\n" to each JSONEachRow value; the lent bytes already
 * end with their own.
 */
export function claim(body: string): Uint8Array | undefined {
  if (!body.startsWith(PREFIX)) return undefined;
  const token = body.endsWith("\n") ? body.slice(0, -1) : body;
  const bytes = lent.get(token);
  if (!bytes) throw new Error("in-process insert body was already used or never lent");
  lent.delete(token);
  return bytes;
}

/** Forgets `rows`' loan if no fetch claimed it (client-web failed before sending). */
export function release(rows: JsonEachRowBytes): void {
  if (rows.token !== undefined) lent.delete(rows.token);
  rows.token = undefined;
}

/** Loans not claimed yet (tests: none may be left behind). */
export function outstandingLoans(): number {
  return lent.size;
}
