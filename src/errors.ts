// The one error type of the API. Routes and domain code throw ApiError with a code; the single
// onError handler in app.ts turns it into the contract's error body.
import { ClickHouseError } from "@clickhouse/client-web";
import type * as v from "valibot";

export const ERROR_STATUS = {
  invalid_body: 400,
  invalid_query: 400,
  /** The request itself is malformed, neither its body nor its query (e.g. a Host header naming no host). */
  invalid_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  internal: 500,
  unavailable: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface Issue {
  path: string;
  message: string;
}

/** An error the client is told about: a machine-readable code, a message saying what to fix. */
export class ApiError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly extra: { issues?: Issue[]; retryAfterSeconds?: number; allow?: string[] } = {},
  ) {
    super(message);
    this.status = ERROR_STATUS[code];
  }
}

/** Dotted paths ("items.3.url") and messages from valibot issues. */
export function toIssues(issues: readonly v.BaseIssue<unknown>[], limit = 20): Issue[] {
  return distinctIssues(issues.map((issue) => ({ path: (issue.path ?? []).map((p) => String(p.key)).join("."), message: plainMessage(issue.message) })), limit);
}

/**
 * valibot's own texts, where a schema sets none ('Invalid type: Expected string but received
 * null', 'Invalid key: Expected "url" but received undefined'), in the words of the messages the
 * schemas set ("must be …"); any other message is kept as it is.
 */
export function plainMessage(message: string): string {
  let m = /^Invalid key: Expected "[^"]*" but received undefined$/.exec(message);
  if (m) return "is required";
  m = /^Invalid type: Expected (.+) but received (.+)$/.exec(message);
  if (m) return `must be ${EXPECTED_TYPE[m[1]!] ?? m[1]} (received ${m[2]})`;
  m = /^Invalid length: Expected ([<>]=)(\d+) but received (\d+)$/.exec(message);
  if (m) return `must be ${m[1] === "<=" ? "at most" : "at least"} ${m[2]} long (received ${m[3]})`;
  m = /^Invalid (finite|integer|safe integer): Received (.+)$/.exec(message);
  if (m) return `must be ${m[1] === "finite" ? "a finite number" : "a whole number"} (received ${m[2]})`;
  return message;
}

const EXPECTED_TYPE: Record<string, string> = { string: "a string", number: "a number", boolean: "true or false", Object: "an object", Array: "an array" };

/**
 * The first `limit` issues, each (path, message) once: a value failing two actions of one schema
 * (e.g. not an integer and below the minimum) gets one issue per action, often with one text.
 */
export function distinctIssues(issues: readonly Issue[], limit: number): Issue[] {
  const out: Issue[] = [];
  for (const issue of issues) {
    if (out.length === limit) break;
    if (!out.some((o) => o.path === issue.path && o.message === issue.message)) out.push(issue);
  }
  return out;
}

// Connection failures of fetch (Bun, undici, Node) and of ioredis, by code and by message.
const NETWORK_CODES = new Set([
  "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH",
  "ConnectionRefused", "ConnectionClosed", "FailedToOpenSocket", "UND_ERR_SOCKET", "UND_ERR_CONNECT_TIMEOUT",
]);
const NETWORK_MESSAGE = /ECONNREFUSED|ECONNRESET|socket hang up|Unable to connect|fetch failed|Connection is closed|Stream isn't writeable|Command timed out|Timeout error|timed out/i;
// ClickHouse errors that say "not now" rather than "wrong query": timeouts, overload, memory,
// network; a database or table not there yet (the schema is not migrated: /readyz says so); and a
// server shutting down (236 ABORTED, also what a failed embedded engine answers until main.ts
// has stopped the process: README, "When the embedded engine fails").
const CLICKHOUSE_UNAVAILABLE = new Set(["60", "81", "159", "202", "209", "210", "236", "241", "243"]);
/** The first line of an error message, trimmed and cut to `max` characters (for one-line reports). */
export function firstLine(message: string, max = 300): string {
  return message.split("\n")[0]!.trim().slice(0, max);
}

/**
 * What the engine says when its disk, not the query, is the problem (no space or inodes, no
 * permission, a read-only or failing file system, no memory); chdb reports some of these as a
 * generic C++ exception (1001). Such a failure is "not now": 503 on a request, a retry of a flush.
 */
export const SYSTEM_FAULT = /filesystem error|No space left|not enough space|Cannot reserve|Disk quota|Operation not permitted|Permission denied|Read-only file system|Input\/output error|Too many open files|Cannot allocate memory|Memory limit/i;

/**
 * Whether `err` (or an error it wraps as `cause`) says a backing service — ClickHouse, Valkey —
 * cannot answer now: the request gets 503 with Retry-After, not 500 (which means a bug here).
 */
export function isBackendUnavailable(err: unknown): boolean {
  let e = err as { name?: unknown; code?: unknown; message?: unknown; cause?: unknown } | undefined;
  for (let depth = 0; e && typeof e === "object" && depth < 5; depth++, e = e.cause as typeof e) {
    if (typeof e.code === "string" && NETWORK_CODES.has(e.code)) return true;
    if (e.name === "TimeoutError" || e.name === "MaxRetriesPerRequestError") return true;
    // By class: client-web's ClickHouseError keeps Error's `name`, so a name test never matched.
    if (e instanceof ClickHouseError && (CLICKHOUSE_UNAVAILABLE.has(String(e.code)) || SYSTEM_FAULT.test(e.message))) return true;
    if (typeof e.message === "string" && NETWORK_MESSAGE.test(e.message)) return true;
  }
  return false;
}
