// CORS for ingest routes. A browser may read an ingest response only from an origin that the key
// in use allows. Such an origin also gets Access-Control-Allow-Credentials: true, because
// `navigator.sendBeacon` with a JSON Blob (a common tracker call) is a request in credentials
// mode "include": its preflight fails without it, and the beacon, which has already answered
// `true` to the page, is never sent (a browser audit lost such beacons silently). The service
// reads no cookie and sets none: the key in the request is the only credential, so allowing
// credentials grants a page nothing its key does not. The origin is always echoed, never `*`.
// Mount before ingestAuth: it answers preflights itself and decorates the response after the
// route (by then resolveBodyKey has found a body key, if that is where it was).
import type { Context, MiddlewareHandler } from "hono";
import type { AppEnv, Principal } from "../http/app-env.ts";
import type { KeyStore } from "./key-store.ts";
import { originAllowed } from "./origin.ts";

const ALLOW_HEADERS = "Content-Type, Authorization, X-API-Key, Content-Encoding, X-Request-Id";
const EXPOSE_HEADERS = "X-Request-Id, Retry-After";
const MAX_AGE_SECONDS = "600";

/** Lets `origin` read the answer, with credentials (see the file comment): preflights and answers alike. */
function allowOrigin(c: Context, origin: string): void {
  c.header("Access-Control-Allow-Origin", origin);
  c.header("Access-Control-Allow-Credentials", "true");
}

/** Preflights and CORS response headers for ingest routes (see the file comment). */
export function ingestCors(store: KeyStore): MiddlewareHandler<AppEnv> {
  /** Whether a preflight from `origin` may proceed: the `?key=` key decides, else any public key. */
  async function preflightAllows(origin: string, key: string | undefined): Promise<boolean> {
    if (!key) return store.publicOriginAllowed(origin);
    try {
      const record = await store.verify(key);
      return record?.type === "public" && originAllowed(record.origins, origin);
    } catch {
      // Key store unavailable: refusing the preflight is the safe answer; the browser retries.
      return false;
    }
  }

  return async function ingestCorsMiddleware(c, next) {
    const origin = c.req.header("origin");
    if (c.req.method === "OPTIONS") {
      // Answers differ by Origin, so shared caches must keep them apart.
      c.header("Vary", "Origin");
      if (origin !== undefined && (await preflightAllows(origin, c.req.query("key")))) {
        allowOrigin(c, origin);
        c.header("Access-Control-Allow-Methods", "POST");
        c.header("Access-Control-Allow-Headers", ALLOW_HEADERS);
        c.header("Access-Control-Max-Age", MAX_AGE_SECONDS);
      }
      return c.body(null, 204);
    }
    // Set before the route, so it goes out with whatever answer the route builds (errors too)
    // instead of rebuilding the finished response to add it.
    c.header("Vary", "Origin", { append: true });
    await next();
    if (origin === undefined) return;
    const principal = c.get("principal") as Principal | undefined;
    if (
      principal?.kind === "ingest" &&
      principal.type === "public" &&
      originAllowed(principal.origins, origin)
    ) {
      allowOrigin(c, origin);
      c.header("Access-Control-Expose-Headers", EXPOSE_HEADERS);
    }
  };
}
