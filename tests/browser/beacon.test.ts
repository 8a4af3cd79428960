// A real browser (Debian's chromium through playwright-core) on a page of an allowed origin sends
// what a tracker sends: sendBeacon with the public key in the query (text/plain, no preflight; a
// JSON Blob, preflighted in credentials mode "include"),
// fetch with keepalive and JSON (a CORS preflight: X-API-Key and Content-Type), and a gzip body
// made with CompressionStream. The service runs as `npm start` runs it. The same calls from an
// origin the key does not allow are refused and stored nowhere; headless Chrome's own user agent
// is a bot.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chromium, type Browser } from "playwright-core";
import { useSinkFixture, type ServiceProcess } from "../helpers/service-process.ts";

const CHROME_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
const SERVICE_ID = "browser_shop";
const sink = useSinkFixture();

let browser: Browser;
let svc: ServiceProcess;
let publicKey: string;
let admin: string;
const pages: Array<ReturnType<typeof Bun.serve>> = [];

/** A web site: one page at `/` on its own loopback port (its own origin). */
function site(): string {
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("<!doctype html><title>shop</title><p>shop</p>", { headers: { "Content-Type": "text/html" } }) });
  pages.push(server);
  return `http://127.0.0.1:${server.port}`;
}

beforeAll(async () => {
  browser = await chromium.launch({ executablePath: Bun.which("chromium") ?? "/usr/bin/chromium", args: ["--no-sandbox"] });
  svc = await sink.startService();
}, 60_000);
afterAll(async () => {
  await browser?.close();
  for (const p of pages) p.stop(true);
});

/** Runs the tracker calls in a page of `origin`; answers what the page could see of each. */
async function track(origin: string, runId: string, userAgent = CHROME_UA) {
  const context = await browser.newContext({ userAgent });
  try {
    const page = await context.newPage();
    await page.goto(`${origin}/`);
    return await page.evaluate(async ({ service, key, runId }) => {
      const beacon = navigator.sendBeacon(`${service}/v1/ingest/event?key=${key}`, JSON.stringify({ name: `beacon-${runId}` }));
      // A JSON Blob makes the beacon a CORS request in credentials mode "include": preflighted, and
      // sent only when the preflight allows credentials (the beacon answers true either way).
      const blobBeacon = navigator.sendBeacon(`${service}/v1/ingest/event?key=${key}`, new Blob([JSON.stringify({ name: `blob-${runId}` })], { type: "application/json" }));
      const read = async (res: Promise<Response>) => {
        try {
          const r = await res;
          return { status: r.status, body: await r.json(), requestId: r.headers.get("x-request-id") };
        } catch (err) {
          return { error: String(err) };
        }
      };
      const fetched = await read(fetch(`${service}/v1/ingest/pageview`, {
        method: "POST",
        keepalive: true,
        headers: { "Content-Type": "application/json", "X-API-Key": key, "X-Request-Id": `req-${runId}` },
        body: JSON.stringify({ url: `${location.origin}/products/${runId}`, title: "Product" }),
      }));
      const batch = JSON.stringify({ items: [{ type: "event", name: `gzip-${runId}` }, { type: "event", name: `gzip-${runId}` }] });
      const gzipped = await new Response(new Blob([batch]).stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer();
      const compressed = await read(fetch(`${service}/v1/ingest/batch`, {
        method: "POST",
        headers: { "Content-Type": "text/plain", "Content-Encoding": "gzip", Authorization: `Bearer ${key}` },
        body: gzipped,
      }));
      return { beacon, blobBeacon, fetched, compressed };
    }, { service: svc.url, key: publicKey, runId });
  } finally {
    await context.close();
  }
}

/** The event names and page paths of run `runId` that the query routes show. */
async function stored(runId: string): Promise<string[]> {
  const get = async (path: string) => ((await (await svc.fetch(path, { headers: { Authorization: `Bearer ${admin}` } })).json()) as { data: Array<{ name: string }> }).data;
  const events = await get(`/v1/events?service_id=${SERVICE_ID}&limit=1000`);
  const summary = (await (await svc.fetch(`/v1/behavior/summary?service_id=${SERVICE_ID}&limit=100`, { headers: { Authorization: `Bearer ${admin}` } })).json()) as { top_pages: Array<{ path: string; views: number }> };
  return [
    ...events.filter((e) => e.name.endsWith(runId)).map((e) => e.name),
    ...summary.top_pages.filter((p) => p.path.endsWith(runId)).map((p) => `page ${p.path} ×${p.views}`),
  ].sort();
}

/** Polls until `want` names are stored (freshness is about a second) or 10 s pass. */
async function waitStored(runId: string, want: number): Promise<string[]> {
  let names: string[] = [];
  for (let i = 0; i < 50 && names.length < want; i++) {
    names = await stored(runId);
    if (names.length < want) await Bun.sleep(200);
  }
  return names;
}

test("a page of an allowed origin: sendBeacon (text and a JSON Blob), a preflighted keepalive fetch and a gzip body are all stored", async () => {
  const shop = site();
  publicKey = await svc.createKey({ type: "public", service_id: SERVICE_ID, origins: [shop] });
  admin = await svc.createKey({ type: "admin", services: [SERVICE_ID] });
  const result = await track(shop, "ok");
  expect(result.beacon).toBe(true);
  expect(result.blobBeacon).toBe(true);
  // The page can read the answers: CORS allowed its origin, after a preflight for the fetch.
  expect(result.fetched).toMatchObject({ status: 202, body: { accepted: 1, dropped: [] }, requestId: "req-ok" });
  expect(result.compressed).toMatchObject({ status: 202, body: { accepted: 2 } });
  expect(await waitStored("ok", 5)).toEqual(["beacon-ok", "blob-ok", "gzip-ok", "gzip-ok", "page /products/ok ×1"]);
}, 60_000);

test("a page of another origin: the fetches fail in the browser and nothing is stored", async () => {
  const elsewhere = site();
  const result = await track(elsewhere, "foreign");
  expect(result.fetched).toHaveProperty("error"); // the preflight is refused: a CORS failure
  expect(result.compressed).toHaveProperty("error"); // answered 403 without CORS headers
  await Bun.sleep(2500); // longer than a flush: what would have been stored is by now
  expect(await stored("foreign")).toEqual([]);
}, 60_000);

test("headless Chrome's own user agent is dropped as a bot", async () => {
  const shop = pages[0]!;
  const result = await track(`http://127.0.0.1:${shop.port}`, "headless", "");
  expect(result.fetched).toMatchObject({ status: 202, body: { accepted: 0, dropped: [{ index: 0, reason: "bot" }] } });
  await Bun.sleep(2500);
  expect(await stored("headless")).toEqual([]);
}, 60_000);
