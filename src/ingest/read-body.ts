// Reads an ingest body under a byte limit, before any parsing: JSON or text/plain holding JSON
// (sendBeacon and keepalive fetch send text/plain to avoid a CORS preflight), optionally gzip.
// The limit applies to the bytes on the wire and again to the bytes after decompression, so a
// chunked body or a compression bomb is cut off at the limit instead of being buffered.
import { ApiError } from "../errors.ts";

const ACCEPTED_TYPES = ["application/json", "text/plain", "application/csp-report"];
/** The Content-Encoding values a body may name (case aside); an absent or empty header is identity. */
export const ACCEPTED_ENCODINGS = ["gzip", "x-gzip", "identity"] as const;

/**
 * The header values read as one of ACCEPTED_ENCODINGS, as a JSON Schema pattern (which has no
 * case-insensitive flag): any case, surrounding blanks, or nothing at all (identity). The names
 * hold only letters and "-", which needs no escape.
 */
export const ACCEPTED_ENCODING_PATTERN = `^[ \\t]*(?:${ACCEPTED_ENCODINGS.map((name) =>
  [...name].map((c) => (c === "-" ? c : `[${c}${c.toUpperCase()}]`)).join(""),
).join("|")})?[ \\t]*$`;

/** One decoder for every request: without `stream`, decode() keeps no state between calls. */
const UTF8 = new TextDecoder("utf-8", { fatal: true });

const NO_BODY = "The request has no body; send a JSON object";
const EMPTY_BODY = "The body is empty; send a JSON object";

/** True for the error of a request that sent no body (or only whitespace): nothing to read a key from. */
export function isEmptyBodyError(err: unknown): boolean {
  return err instanceof ApiError && (err.message === NO_BODY || err.message === EMPTY_BODY);
}

/** Parses the request body as JSON after enforcing content type, encoding and size. */
export async function readJsonBody(request: Request, limitBytes: number): Promise<unknown> {
  const contentType = request.headers.get("content-type") ?? "";
  const semicolon = contentType.indexOf(";");
  const type = (semicolon < 0 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
  if (type !== "" && !ACCEPTED_TYPES.includes(type)) {
    throw new ApiError("unsupported_media_type", `Content-Type ${type} is not accepted; send application/json or text/plain holding JSON`);
  }
  // No header (or an empty one) reads as JSON; parameters without a media type (";charset=utf-8")
  // are a malformed header, not a missing one.
  if (type === "" && contentType.trim() !== "") {
    throw new ApiError("unsupported_media_type", `Content-Type ${JSON.stringify(contentType)} names no media type; send application/json or text/plain holding JSON`);
  }
  if (semicolon >= 0) checkCharset(contentType.slice(semicolon + 1));
  // x-gzip is gzip (RFC 9110, 8.4.1.3); an empty header names no coding.
  const sent = (request.headers.get("content-encoding") ?? "").trim().toLowerCase() || "identity";
  if (!(ACCEPTED_ENCODINGS as readonly string[]).includes(sent)) {
    throw new ApiError("unsupported_media_type", `Content-Encoding ${sent} is not accepted; send gzip or no encoding`);
  }
  const encoding = sent === "x-gzip" ? "gzip" : sent;
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > limitBytes) throw tooLarge(limitBytes);
  if (!request.body) throw new ApiError("invalid_body", NO_BODY);

  let bytes: Uint8Array;
  try {
    if (declared !== null && encoding === "identity") {
      // The common case: a declared, already-checked length; read it in one go.
      bytes = new Uint8Array(await request.arrayBuffer());
      if (bytes.byteLength > limitBytes) throw tooLarge(limitBytes);
    } else {
      let stream: ReadableStream<Uint8Array> = request.body.pipeThrough(limitStream(limitBytes));
      if (encoding === "gzip") stream = stream.pipeThrough(new DecompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>).pipeThrough(limitStream(limitBytes));
      bytes = await collect(stream);
    }
  } catch (err) {
    if (err instanceof ApiError) throw err;
    throw new ApiError("invalid_body", "The body could not be read (bad gzip data or a broken upload)");
  }
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    throw new ApiError("invalid_body", "The body is not valid UTF-8");
  }
  if (text.trim() === "") throw new ApiError("invalid_body", EMPTY_BODY);
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError("invalid_body", "The body is not valid JSON");
  }
}

/** Charsets whose bytes read as UTF-8 unchanged (ASCII is a subset). */
const UTF8_CHARSETS = new Set(["utf-8", "utf8", "us-ascii"]);

/**
 * The body is read as UTF-8 whatever it declares: a declared Latin-1 body was stored garbled and a
 * UTF-16 one refused as "not valid JSON", so a charset that is not UTF-8 is refused by name instead.
 */
function checkCharset(params: string): void {
  for (const param of params.split(";")) {
    const eq = param.indexOf("=");
    if (eq < 0 || param.slice(0, eq).trim().toLowerCase() !== "charset") continue;
    const charset = param.slice(eq + 1).trim().replace(/^"(.*)"$/, "$1").toLowerCase();
    if (!UTF8_CHARSETS.has(charset)) {
      throw new ApiError("unsupported_media_type", `charset ${JSON.stringify(charset)} is not accepted; send the body as UTF-8 (charset=utf-8, or no charset)`);
    }
  }
}

function tooLarge(limit: number): ApiError {
  return new ApiError("payload_too_large", `The body is larger than ${limit} bytes (after decompression too); split it into smaller requests`);
}

/** Passes bytes through until more than `limit` went by, then fails the stream with a 413. */
function limitStream(limit: number): TransformStream<Uint8Array, Uint8Array> {
  let seen = 0;
  return new TransformStream({
    transform(chunk, controller) {
      seen += chunk.byteLength;
      if (seen > limit) controller.error(tooLarge(limit));
      else controller.enqueue(chunk);
    },
  });
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  const reader = stream.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    parts.push(value);
    total += value.byteLength;
  }
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.byteLength;
  }
  return out;
}
