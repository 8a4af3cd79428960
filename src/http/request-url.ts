// Bun hands the server a Request whose `url` is only the path ("/healthz") when the Host header is
// missing (HTTP/1.0 allows that; some load balancers' health checks send no Host) or is not a valid
// `host[:port]` ("a b", "x/y"), and an absolute URL that no URL parser takes for some Hosts it lets
// through ("a:99999", "[::1", "999.1.1.1"). Hono cannot route the first, and `new URL` throws on
// both, so such requests were 500s. They get a usable URL here; whether the Host was refused is
// kept, so the app can answer 400 (RFC 9112, 3.2: a Host with an invalid value is a 400) with its
// usual error body.

/** Requests whose Host header was present, not empty, and not a valid host. */
const refusedHost = new WeakSet<Request>();

/** `req` itself when its URL parses (every request with a usable Host), else a copy whose URL does. */
export function withUsableUrl(req: Request): Request {
  const url = req.url;
  if (url.charCodeAt(0) !== 0x2f /* "/" */) {
    if (URL.canParse(url)) return req; // ~0.1 µs
    const pathStart = url.indexOf("/", url.indexOf("//") + 2);
    const absolute = new Request(`http://localhost${pathStart < 0 ? "/" : url.slice(pathStart)}`, req);
    refusedHost.add(absolute);
    return absolute;
  }
  const absolute = new Request(`http://localhost${url}`, req);
  // An empty Host is valid (RFC 9112, 3.2: a target without an authority); a missing one is served.
  if (req.headers.get("host")) refusedHost.add(absolute);
  return absolute;
}

/** Whether `withUsableUrl` saw a Host header that names no host. */
export function hasRefusedHost(req: Request): boolean {
  return refusedHost.has(req);
}
