// `npm run clickhouse`: the embedded engine served as a ClickHouse HTTP endpoint on loopback, so
// a service process can use it through CLICKHOUSE_URL and a fault test can stop and restart it.
// Usage: bun src/storage/embedded-server.ts [--port 8123] [--host 127.0.0.1] [--data ./data]
import { parseArgs } from "node:util";
import { closeEmbeddedEngines, embeddedEngine } from "./clickhouse.ts";
import { SLOW_REQUEST_MS } from "./embedded/chdb-engine.ts";
import { createClickHouseHttpHandler } from "./embedded/http-handler.ts";
import { ORPHANS_REMOVED } from "./embedded/orphan-dedup-entries.ts";
import { hardExit } from "../hard-exit.ts";
import { keepFilesPrivate } from "../private-files.ts";
import { withUsableUrl } from "../http/request-url.ts";

keepFilesPrivate();

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "8123" },
    host: { type: "string", default: "127.0.0.1" },
    data: { type: "string", default: "./data" },
    lanes: { type: "string", default: "4" },
  },
});
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`--port: expected a port number, got ${JSON.stringify(values.port)}`);
  process.exit(2);
}
const engine = embeddedEngine(values.data, Number(values.lanes) || 4, (reports) => {
  for (const { table, parts } of reports) console.log(JSON.stringify({ msg: ORPHANS_REMOVED, table, parts }));
});
// Failed for good (a fatal signal in one of the engine's threads): exit 70 so that whoever started
// it starts it again, rather than answer every request with the failure (chdb-engine.ts).
engine.onFailure((error) => {
  console.log(JSON.stringify({ msg: "engine failed: exiting", error, exit_code: 70 }));
  hardExit(70);
});
// A request queued or running for over 10 s is logged while it lasts (its clients see only a timeout).
engine.watchSlow(SLOW_REQUEST_MS, (slow) => console.log(JSON.stringify({ msg: "slow request", ...slow })));
const handler = createClickHouseHttpHandler(engine);
// package.json's `clickhouse` script starts this with --max-http-header-size=2097152: client-web
// sends query parameters in the URL, which ClickHouse takes up to 1 MiB (http_max_uri_size), and
// at Bun's default of 16 KiB a restart's rebuild looking up 5,000 session ids got a bare 431.
const server = Bun.serve({
  port,
  hostname: values.host,
  maxRequestBodySize: 1024 * 1024 * 1024,
  idleTimeout: 255,
  fetch: (req) => handler(withUsableUrl(req)),
});
console.log(JSON.stringify({ msg: "embedded clickhouse listening", url: `http://${values.host}:${server.port}`, data: values.data }));

async function shutdown(): Promise<void> {
  // Stop taking requests, let running ones finish, then close the engine's connections.
  await server.stop();
  await closeEmbeddedEngines();
  process.exit(0);
}
process.on("SIGTERM", () => void shutdown());
process.on("SIGINT", () => void shutdown());
