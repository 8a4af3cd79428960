// The ClickHouse HTTP interface, implemented over the embedded engine. `@clickhouse/client-web`
// takes this as its `fetch`, so the service's production code path (client-web, formats,
// `{name:Type}` parameters, insert settings, error codes) runs unchanged against chdb; the same
// handler served on a TCP port (`npm run clickhouse`) is a local "ClickHouse over HTTP".
import type { ChdbEngine, EngineOutput, EngineSummary } from "./chdb-engine.ts";
import { claim } from "./lent-bodies.ts";

/** URL parameters that belong to the HTTP layer; every other unknown one is a setting. */
const HTTP_PARAMS = new Set([
  "query", "database", "default_format", "query_id", "session_id", "session_timeout", "session_check",
  "role", "user", "password", "quota_key", "compress", "decompress", "buffer_size", "wait_end_of_query",
  "enable_http_compression", "send_progress_in_http_headers", "add_http_cors_header",
  "http_headers_progress_interval_ms", "http_zlib_compression_level", "http_response_buffer_size",
  "http_wait_end_of_query", "http_write_exception_in_output_format",
  "http_native_compression_disable_checksumming_on_decompress", "client_protocol_version",
]);
/**
 * Statements whose results may be large; they stream instead of being buffered, unless the request
 * asks for the whole answer at once (`wait_end_of_query=1`, as a ClickHouse server buffers it).
 * A buffered read also runs entirely on chdb's worker threads, while a streamed one is planned
 * on the calling thread: chdb's stream call runs the query's analysis synchronously, which
 * builds `IN (subquery)` sets and scalar subqueries (measured: 120–916 ms for a 30-day list
 * filtered by device, with the event loop held throughout). The service's own client asks for
 * buffered reads (storage/clickhouse.ts); a client that wants a large result in pieces streams.
 */
const READ_STATEMENT = /^(?:\s|--[^\n]*\n|\/\*[\s\S]*?\*\/)*(select|with|show|describe|desc|explain|exists)\b/i;
const INSERT_STATEMENT = /^(?:\s|--[^\n]*\n|\/\*[\s\S]*?\*\/)*insert\b/i;
const VERSION = "26.7 (embedded chdb)";
/** Largest piece of a streamed result handed to the response body at once (a server's buffer size). */
const RESPONSE_PIECE = 1024 * 1024;

/** Builds a `fetch`-shaped function that answers ClickHouse HTTP requests from `engine`. */
export function createClickHouseHttpHandler(engine: ChdbEngine): (input: RequestInfo | URL, init?: RequestInit) => Promise<Response> {
  return async (input, init) => {
    try {
      // This process's client lends insert bodies by reference (lent-bodies.ts): take the bytes
      // back here instead of encoding a string and reading it out of a Request again.
      const lent = typeof init?.body === "string" ? claim(init.body) : undefined;
      const request = input instanceof Request && init === undefined ? input : new Request(input, lent ? { ...init, body: null } : init);
      return await handle(engine, request, lent);
    } catch (err) {
      return errorResponse(err);
    }
  };
}

async function handle(engine: ChdbEngine, request: Request, lentBody?: Uint8Array): Promise<Response> {
  const url = new URL(request.url);
  if (url.pathname === "/ping" || (url.pathname === "/" && request.method !== "POST" && !url.searchParams.has("query"))) {
    return new Response("Ok.\n", { headers: { "Content-Type": "text/plain; charset=UTF-8" } });
  }
  if (url.pathname !== "/") {
    return clickhouseError(404, 0, `There is no handle ${url.pathname}`, "UNKNOWN_HANDLER");
  }
  const params: Record<string, string> = {};
  const settings: Record<string, string> = {};
  for (const [name, value] of url.searchParams) {
    if (name.startsWith("param_")) params[name.slice(6)] = value;
    else if (!HTTP_PARAMS.has(name)) settings[name] = value;
  }
  let urlQuery = url.searchParams.get("query");
  let body: Uint8Array | undefined = lentBody;
  const contentType = request.headers.get("content-type") ?? "";
  if (contentType.startsWith("multipart/form-data")) {
    // client-web moves long parameter lists into a multipart body.
    const form = await request.formData();
    for (const [name, value] of form) {
      if (typeof value !== "string") continue;
      if (name === "query") urlQuery = value;
      else if (name.startsWith("param_")) params[name.slice(6)] = value;
    }
  } else if (!body && request.body) {
    const stream = request.headers.get("content-encoding") === "gzip"
      ? request.body.pipeThrough(new DecompressionStream("gzip"))
      : request.body;
    body = new Uint8Array(await new Response(stream).arrayBuffer());
    if (body.byteLength === 0) body = undefined;
  }
  const queryId = url.searchParams.get("query_id") || crypto.randomUUID();
  const format = url.searchParams.get("default_format") || "TabSeparated";
  const database = url.searchParams.get("database") ?? undefined;

  let sql: string;
  let data: Uint8Array | undefined;
  if (urlQuery !== null) {
    sql = urlQuery;
    if (body && INSERT_STATEMENT.test(urlQuery)) data = body;
    else if (body) sql = `${urlQuery}\n${new TextDecoder().decode(body)}`;
  } else if (body) {
    sql = new TextDecoder().decode(body);
  } else {
    return clickhouseError(400, 62, "Empty query", "SYNTAX_ERROR");
  }
  if (sql.trim() === "") return clickhouseError(400, 62, "Empty query", "SYNTAX_ERROR");

  const stream = !data && READ_STATEMENT.test(sql) && url.searchParams.get("wait_end_of_query") !== "1";
  const out = await engine.run({ sql, params, settings, database, format, data }, { stream });
  return successResponse(out, queryId, sql, format);
}

function successResponse(out: EngineOutput, queryId: string, sql: string, defaultFormat: string): Response {
  const format = explicitFormat(sql) ?? defaultFormat;
  const headers = new Headers({
    "Content-Type": contentTypeOf(format),
    "X-ClickHouse-Query-Id": queryId,
    "X-ClickHouse-Format": format,
    "X-ClickHouse-Timezone": "UTC",
    "X-ClickHouse-Server-Display-Name": "embedded",
    "X-ClickHouse-Summary": summaryHeader(out.summary),
  });
  if (out.kind === "buffer") return new Response(out.bytes as Uint8Array<ArrayBuffer>, { headers });
  const { first, rest } = out;
  const reader = rest.getReader();
  // The engine hands over a whole block at a time (tens of MB for wide rows); the body passes it
  // on in pieces of at most RESPONSE_PIECE bytes (views, no copies), as a server's write buffer
  // would, so a reader never has to take in a whole block at once.
  let pending: Uint8Array | undefined = first;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        while (!pending || pending.byteLength === 0) {
          const { value, done } = await reader.read();
          if (done) return controller.close();
          pending = value;
        }
        const piece = pending.subarray(0, RESPONSE_PIECE);
        pending = pending.subarray(piece.byteLength);
        controller.enqueue(piece);
      } catch (err) {
        // Headers are gone already: like the real server, report the error inside the body.
        controller.enqueue(new TextEncoder().encode(`\n${messageOf(err)}\n`));
        controller.close();
      }
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
  return new Response(body, { headers });
}

function summaryHeader(s: EngineSummary): string {
  return JSON.stringify({
    read_rows: String(s.readRows), read_bytes: String(s.readBytes),
    written_rows: String(s.writtenRows), written_bytes: String(s.writtenBytes),
    total_rows_to_read: "0", result_rows: String(s.resultRows), result_bytes: String(s.resultBytes),
    elapsed_ns: String(s.elapsedNs),
  });
}

function explicitFormat(sql: string): string | undefined {
  return /\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$/i.exec(sql)?.[1];
}

function contentTypeOf(format: string): string {
  if (format.startsWith("JSON")) return "application/json; charset=UTF-8";
  if (format.startsWith("TabSeparated") || format.startsWith("TSV")) return "text/tab-separated-values; charset=UTF-8";
  if (format.startsWith("CSV")) return "text/csv; charset=UTF-8";
  return "text/plain; charset=UTF-8";
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Exception code → HTTP status, as ClickHouse's server maps them
 * (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp); every other code is a 500 there too, including
 * UNKNOWN_QUERY_PARAMETER (456) and BAD_QUERY_PARAMETER (457).
 */
const STATUS_OF_CODE = new Map<number, number>([
  // REQUIRED_PASSWORD
  [194, 401],
  // UNKNOWN_USER, WRONG_PASSWORD, AUTHENTICATION_FAILED, SET_NON_GRANTED_ROLE, ACCESS_DENIED
  ...[192, 193, 516, 512, 497].map((c) => [c, 403] as [number, number]),
  // BAD_ARGUMENTS, CANNOT_COMPILE_REGEXP, CANNOT_PARSE_* (TEXT, ESCAPE_SEQUENCE, QUOTED_STRING, DATE,
  // DATETIME, NUMBER, DOMAIN_VALUE_FROM_STRING, IPV4, IPV6, INPUT_ASSERTION_FAILED, UUID),
  // DUPLICATE_COLUMN, ILLEGAL_COLUMN, UNKNOWN_ELEMENT_IN_AST, UNKNOWN_TYPE_OF_AST_NODE,
  // THERE_IS_NO_COLUMN, TOO_DEEP_AST, TOO_BIG_AST, UNEXPECTED_AST_STRUCTURE, SYNTAX_ERROR,
  // INCORRECT_DATA, TYPE_MISMATCH, VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
  ...[36, 427, 6, 25, 26, 38, 41, 72, 441, 675, 676, 27, 376, 15, 44, 37, 123, 8, 167, 168, 223, 62, 117, 53, 321]
    .map((c) => [c, 400] as [number, number]),
  // UNKNOWN_TABLE, UNKNOWN_FUNCTION, UNKNOWN_IDENTIFIER, UNKNOWN_TYPE, UNKNOWN_STORAGE,
  // UNKNOWN_DATABASE, UNKNOWN_SETTING, UNKNOWN_DIRECTION_OF_SORTING, UNKNOWN_AGGREGATE_FUNCTION,
  // UNKNOWN_FORMAT, UNKNOWN_DATABASE_ENGINE, UNKNOWN_TYPE_OF_QUERY, UNKNOWN_ROLE
  ...[60, 46, 47, 50, 56, 81, 115, 152, 63, 73, 336, 78, 511].map((c) => [c, 404] as [number, number]),
  [229, 413], // QUERY_IS_TOO_LARGE
  [48, 501], // NOT_IMPLEMENTED
  [209, 503], // SOCKET_TIMEOUT
  [76, 503], // CANNOT_OPEN_FILE
  [381, 411], // HTTP_LENGTH_REQUIRED
  [159, 408], // TIMEOUT_EXCEEDED
  [439, 503], // CANNOT_SCHEDULE_TASK
  [779, 415], // UNSUPPORTED_MEDIA_TYPE
]);

/** Maps an engine error to the status the ClickHouse server would send. */
function statusOf(code: number): number {
  return STATUS_OF_CODE.get(code) ?? 500;
}

function errorResponse(err: unknown): Response {
  const message = messageOf(err);
  const match = /Code: (\d+)\./.exec(message);
  const code = match ? Number(match[1]) : 1001;
  const text = match ? message : `Code: 1001. DB::Exception: ${message}. (STD_EXCEPTION)`;
  return new Response(`${text} (version ${VERSION})\n`, {
    status: statusOf(code),
    headers: { "Content-Type": "text/plain; charset=UTF-8", "X-ClickHouse-Exception-Code": String(code) },
  });
}

function clickhouseError(status: number, code: number, message: string, type: string): Response {
  return new Response(`Code: ${code}. DB::Exception: ${message}. (${type}) (version ${VERSION})\n`, {
    status,
    headers: { "Content-Type": "text/plain; charset=UTF-8", "X-ClickHouse-Exception-Code": String(code) },
  });
}
