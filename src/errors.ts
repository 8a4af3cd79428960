// The one error type of the API. Routes and domain code throw ApiError with a code; the single
// onError handler in app.ts turns it into the contract's error body.
import type * as v from "valibot";

export const ERROR_STATUS = {
  invalid_body: 400,
  invalid_query: 400,
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
  return distinctIssues(issues.map((issue) => ({ path: (issue.path ?? []).map((p) => String(p.key)).join("."), message: issue.message })), limit);
}

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
