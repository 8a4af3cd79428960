// `npm run keys -- create|list|revoke ...`: key management from a shell, over HTTP against a
// running service (the service owns the key store; the CLI never touches ClickHouse). Exit codes:
// 0 done, 1 the service refused or could not be reached, 2 usage error.
import { isIP } from "node:net";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ConfigError, loadConfig } from "../config.ts";
import { readRootTokenFile, ROOT_TOKEN_FILE, RootTokenFileError } from "./root-token.ts";

const USAGE = `usage: npm run keys -- <command> [options]

commands:
  create --type public --service <id> [--origin <https://...>]... [--name <text>]
  create --type secret --service <id> [--name <text>]
  create --type admin  --services <id,id,...|*> [--name <text>]
  list
  revoke <key id>

options:
  --url <url>      the service (default http://<HOST>:<PORT> as the service reads them; 127.0.0.1 when
                   HOST listens on every address, as it does by default; PORT 3004)
  --token <token>  the root token (default: ANALYTICS_ROOT_TOKEN, else <DATA_DIR>/root-token)`;

export interface CliIo {
  env: Record<string, string | undefined>;
  out: (text: string) => void;
  err: (text: string) => void;
  fetch?: typeof fetch;
}

class UsageError extends Error {}

/** Runs one CLI invocation; resolves to the process exit code. */
export async function runKeysCli(argv: string[], io: CliIo): Promise<number> {
  let request: { method: string; path: string; body?: unknown };
  let base: string;
  let token: string;
  /** Where the token came from when it was the data directory's file (a 401 then says so). */
  let tokenFile: string | undefined;
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        url: { type: "string" },
        token: { type: "string" },
        type: { type: "string" },
        service: { type: "string" },
        services: { type: "string" },
        origin: { type: "string", multiple: true },
        name: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
    if (values.help) {
      io.out(USAGE);
      return 0;
    }
    request = toRequest(positionals, values);
    base = checkUrl(values.url ?? serviceUrl(loadConfig(io.env)));
    if (values.token !== undefined) token = values.token;
    else ({ token, file: tokenFile } = rootTokenFromEnvironment(io.env));
  } catch (err) {
    if (!(err instanceof UsageError || err instanceof ConfigError || err instanceof RootTokenFileError || isParseArgsError(err))) throw err;
    io.err(`keys: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }

  let response: Response;
  try {
    response = await (io.fetch ?? fetch)(new URL(request.path, base), {
      method: request.method,
      headers: { Authorization: `Bearer ${token}`, ...(request.body ? { "Content-Type": "application/json" } : {}) },
      body: request.body ? JSON.stringify(request.body) : undefined,
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    io.err(`keys: cannot reach ${base}: ${(err as Error).message}`);
    return 1;
  }
  const text = await response.text();
  if (!response.ok) {
    // A service started with ANALYTICS_ROOT_TOKEN ignores the file a start without it generated.
    const hint = response.status === 401 && tokenFile
      ? `\n  (the token came from ${tokenFile}; if the service runs with ANALYTICS_ROOT_TOKEN, set it here too or pass --token)`
      : "";
    io.err(`keys: ${response.status} ${serverMessage(text)}${hint}`);
    return 1;
  }
  const answer = text ? (JSON.parse(text) as { type?: string; origins?: unknown[] }) : undefined;
  io.out(answer ? JSON.stringify(answer, null, 2) : JSON.stringify({ revoked: request.path.split("/").pop() }, null, 2));
  if (request.method === "POST" && answer?.type === "public" && answer.origins?.length === 0) {
    io.err("keys: note: made without --origin, this key allows no page (requests with an Origin get 403); servers and tools without one are accepted");
  }
  return 0;
}

type Values = { type?: string; service?: string; services?: string; origin?: string[]; name?: string };

function toRequest(positionals: string[], values: Values): { method: string; path: string; body?: unknown } {
  const [command, ...rest] = positionals;
  if (command === "list" && rest.length === 0) return { method: "GET", path: "/v1/keys" };
  if (command === "revoke") {
    if (rest.length !== 1 || !rest[0]) throw new UsageError("revoke takes exactly one key id");
    return { method: "DELETE", path: `/v1/keys/${encodeURIComponent(rest[0])}` };
  }
  if (command !== "create" || rest.length > 0) throw new UsageError(command ? `unknown command or extra arguments: ${positionals.join(" ")}` : "no command");
  const body: Record<string, unknown> = { type: values.type };
  if (values.name !== undefined) body.name = values.name;
  // An option the type does not read is refused, not dropped (a secret key's --origin would bind nothing).
  if (values.origin && values.type !== "public") throw new UsageError("--origin applies to public keys only");
  if (values.services && values.type !== "admin") throw new UsageError("--services applies to admin tokens only; a public or secret key takes --service <id>");
  if (values.service && values.type === "admin") throw new UsageError("an admin token takes --services <id,id,...>, not --service");
  if (values.type === "public" || values.type === "secret") {
    if (!values.service) throw new UsageError(`create --type ${values.type} needs --service <id>`);
    body.service_id = values.service;
    // --origin may repeat or carry a comma-separated list.
    if (values.origin) body.origins = values.origin.flatMap((o) => o.split(",")).map((o) => o.trim()).filter(Boolean);
  } else if (values.type === "admin") {
    if (!values.services) throw new UsageError("create --type admin needs --services <id,id,...> or --services '*'");
    body.services = values.services.split(",").map((s) => s.trim()).filter(Boolean);
  } else {
    throw new UsageError("create needs --type public, secret or admin");
  }
  return { method: "POST", path: "/v1/keys", body };
}

/** Where the service listens, from its own configuration: a wildcard HOST is reached on loopback. */
function serviceUrl(config: { host: string; port: number }): string {
  const host = config.host.replace(/^\[(.*)\]$/, "$1");
  if (host === "0.0.0.0" || host === "::") return `http://127.0.0.1:${config.port}`;
  return `http://${isIP(host) === 6 ? `[${host}]` : host}:${config.port}`;
}

function checkUrl(url: string): string {
  if (!/^https?:\/\/[^/]/.test(url) || !URL.canParse(url)) throw new UsageError(`--url must be an http(s) URL, got ${url}`);
  return url;
}

function rootTokenFromEnvironment(env: Record<string, string | undefined>): { token: string; file?: string } {
  const config = loadConfig(env);
  if (config.rootToken) return { token: config.rootToken };
  const token = readRootTokenFile(config.dataDir);
  if (!token) throw new UsageError(`no root token: pass --token, set ANALYTICS_ROOT_TOKEN, or run where ${config.dataDir}/${ROOT_TOKEN_FILE} exists`);
  return { token, file: join(config.dataDir, ROOT_TOKEN_FILE) };
}

/** The contract's error message (and issues), or the raw text from something else. */
function serverMessage(text: string): string {
  try {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string; issues?: { path: string; message: string }[] } };
    if (body.error?.message) {
      const issues = (body.error.issues ?? []).map((i) => `\n  ${i.path || "(body)"}: ${i.message}`).join("");
      return `${body.error.code ?? "error"}: ${body.error.message}${issues}`;
    }
  } catch {
    // not JSON: fall through
  }
  return text.slice(0, 500);
}

function isParseArgsError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("ERR_PARSE_ARGS");
}

if (import.meta.main) {
  const code = await runKeysCli(process.argv.slice(2), {
    env: process.env,
    out: (t) => console.log(t),
    err: (t) => console.error(t),
  });
  process.exit(code);
}
