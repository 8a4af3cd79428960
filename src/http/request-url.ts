// Bun hands the server a Request whose `url` is only the path ("/healthz") when the Host header is
// missing (HTTP/1.0 allows that; some load balancers' health checks send no Host) or is not a valid
// `host[:port]` ("a b", "x/y"). Hono cannot route such a URL and `new URL` throws on it, so every
// such request was a 500. It gets an absolute URL here; whether its Host was refused is kept, so the
// app can answer 400 (RFC 9112, 3.2: a Host with an invalid value is a 400) with its usual error body.

/** Requests whose Host header was present, not empty, and not a valid host. */
const refusedHost = new WeakSet<Request>();

/** `req` itself when its URL is absolute (every request with a usable Host), else a copy that is. */
export function withAbsoluteUrl(req: Request): Request {
  if (req.url.charCodeAt(0) !== 0x2f /* "/" */) return req;
  const absolute = new Request(`http://localhost${req.url}`, req);
  // An empty Host is valid (RFC 9112, 3.2: a target without an authority); a missing one is served.
  if (req.headers.get("host")) refusedHost.add(absolute);
  return absolute;
}

/** Whether `withAbsoluteUrl` saw a Host header that names no host. */
export function hasRefusedHost(req: Request): boolean {
  return refusedHost.has(req);
}
