import { isbot } from "isbot";
import { MAX_USER_AGENT_LENGTH } from "./user-agent.ts";
import { memoize } from "../../memo.ts";

// isbot already knows these today; listed here too so that traffic from scripts stays out of the
// numbers even if a future isbot release narrows its list. Matched at the start of the UA only,
// where a library puts its name: a browser UA that merely mentions one further on is not a script.
const HTTP_LIBRARIES =
  /^(curl|wget|python-requests|python-urllib|python-httpx|aiohttp|go-http-client|axios|node-fetch|undici|okhttp|java|apache-httpclient|libwww-perl|postmanruntime|guzzlehttp|ruby|faraday|httpie|deno|bun|node)\b/i;

/**
 * True when the user agent is a crawler, a headless browser, or an HTTP library; bot items are
 * dropped with reason `bot` and never counted as traffic.
 *
 * An empty or missing user agent counts as a bot: every browser sends one, and the clients that
 * send none are scripts and headless tools. A caller that knows better (a secret server key, whose
 * items may carry no user agent at all) should skip this check rather than pass a made-up UA.
 */
export function detectBot(ua: string | null | undefined): boolean {
  const text = (ua ?? "").trim().slice(0, MAX_USER_AGENT_LENGTH);
  if (text === "") return true;
  return isBotText(text);
}

/**
 * The visitor's user agent for a secret key's item that carries no `user_agent`: the request's
 * `User-Agent` header, as API.md reads ("otherwise from … the `User-Agent` header"), when it is a
 * browser's or a crawler's (a back end forwarding its visitor's); "" when the header is missing
 * or names an HTTP library — that is the back end's own client, not a visitor, and its items must
 * not be dropped as scripts.
 */
export function serverRequestAgent(header: string | null): string {
  const text = (header ?? "").trim();
  return text === "" || HTTP_LIBRARIES.test(text) ? "" : text;
}

// isbot runs one large regex per call; the same user agents repeat all day.
const isBotText = memoize((text: string) => HTTP_LIBRARIES.test(text) || isbot(text), 10_000);
