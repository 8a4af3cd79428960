import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { buildApp } from "../../src/app.ts";
import { generateRootToken } from "../../src/auth/key-format.ts";
import { registerKeyRoutes } from "../../src/auth/key-routes.ts";
import { ClickHouseKeyStore } from "../../src/auth/key-store.ts";
import { runKeysCli } from "../../src/auth/keys-cli.ts";
import { silentLogger } from "../../src/logger.ts";
import { createMetrics } from "../../src/ops/metrics.ts";
import type { ClickHouse } from "../../src/storage/clickhouse.ts";
import { keysDatabase } from "./keys-db.ts";

const REPO = resolve(import.meta.dir, "..", "..");
const ROOT = generateRootToken();
let ch: ClickHouse;
let store: ClickHouseKeyStore;
let server: ReturnType<typeof Bun.serve>;
let url: string;
let dataDir: string;

beforeAll(async () => {
  ({ ch } = await keysDatabase());
  store = new ClickHouseKeyStore({ client: ch.client });
  await store.start();
  const app = buildApp({ logger: silentLogger, metrics: createMetrics(), readiness: async () => [], routes: [(a) => registerKeyRoutes(a, { store, rootToken: ROOT })] });
  server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: app.fetch });
  url = `http://127.0.0.1:${server.port}`;
  dataDir = mkdtempSync(join(tmpdir(), "keys-cli-"));
});
afterAll(async () => {
  await server.stop(true);
  await store.stop();
  await ch.close();
  rmSync(dataDir, { recursive: true, force: true });
});

/** `npm run keys -- ...` in a child process with only the given environment (plus PATH). */
async function npmKeys(args: string[], env: Record<string, string> = {}) {
  const proc = Bun.spawn(["npm", "run", "--silent", "keys", "--", "--url", url, ...args], {
    cwd: REPO,
    env: { PATH: `${join(REPO, "node_modules", ".bin")}:${process.env.PATH ?? ""}`, HOME: process.env.HOME ?? "/tmp", ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { stdout, stderr, code };
}

describe("keys CLI", () => {
  test("create → list → revoke against a running service", async () => {
    // The token three ways: --token, ANALYTICS_ROOT_TOKEN, and the data directory's file.
    const created = await npmKeys(["create", "--type", "public", "--service", "shop", "--origin", "https://shop.example", "--name", "web", "--token", ROOT]);
    expect(created.stderr).toBe("");
    expect(created.code).toBe(0);
    const key = JSON.parse(created.stdout) as { id: string; key: string; origins: string[]; name: string };
    expect(key.key).toMatch(/^pk_/);
    expect(key).toMatchObject({ origins: ["https://shop.example"], name: "web" });
    expect((await store.verify(key.key))?.id).toBe(key.id);

    const listed = await npmKeys(["list"], { ANALYTICS_ROOT_TOKEN: ROOT });
    expect(listed.code).toBe(0);
    const list = JSON.parse(listed.stdout) as { data: { id: string; revoked_at: string | null }[] };
    expect(list.data.find((k) => k.id === key.id)?.revoked_at).toBeNull();
    expect(listed.stdout).not.toContain(key.key);

    writeFileSync(join(dataDir, "root-token"), `${ROOT}\n`, { mode: 0o600 });
    const revoked = await npmKeys(["revoke", key.id], { DATA_DIR: dataDir });
    expect(revoked.code).toBe(0);
    expect(JSON.parse(revoked.stdout)).toEqual({ revoked: key.id });
    expect(await store.verify(key.key)).toBeNull();

    const after = JSON.parse((await npmKeys(["list", "--token", ROOT])).stdout) as { data: { id: string; revoked_at: string | null }[] };
    expect(after.data.find((k) => k.id === key.id)?.revoked_at).toBeString();
  });

  test("without --url the CLI reaches the service on PORT, as the service reads it", async () => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runKeysCli(["list"], { env: { ANALYTICS_ROOT_TOKEN: ROOT, PORT: String(server.port) }, out: (t) => out.push(t), err: (t) => err.push(t) });
    expect(err.join("")).toBe("");
    expect(code).toBe(0);
    expect(JSON.parse(out.join(""))).toHaveProperty("data");
  });

  // Re-audit: with HOST=::1 the CLI still asked 127.0.0.1 and could not reach the service.
  test("without --url the CLI asks the address HOST names (loopback for a wildcard HOST)", async () => {
    const asked: string[] = [];
    const recording = (async (url: URL | RequestInfo) => {
      asked.push(String(url));
      return Response.json({ data: [] });
    }) as typeof fetch;
    for (const host of ["::1", "[::1]", "0.0.0.0", "::", "10.1.2.3", "api.internal"]) {
      const code = await runKeysCli(["list"], { env: { ANALYTICS_ROOT_TOKEN: ROOT, PORT: "4321", HOST: host }, out: () => undefined, err: () => undefined, fetch: recording });
      expect(code).toBe(0);
    }
    expect(asked).toEqual([
      "http://[::1]:4321/v1/keys", "http://[::1]:4321/v1/keys", "http://127.0.0.1:4321/v1/keys", "http://127.0.0.1:4321/v1/keys",
      "http://10.1.2.3:4321/v1/keys", "http://api.internal:4321/v1/keys",
    ]);
  });

  test("usage errors exit 2, refusals exit 1 with the server's message", async () => {
    const run = async (argv: string[], env: Record<string, string | undefined> = { ANALYTICS_ROOT_TOKEN: ROOT, DATA_DIR: dataDir }) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await runKeysCli(["--url", url, ...argv], { env, out: (t) => out.push(t), err: (t) => err.push(t) });
      return { code, out: out.join("\n"), err: err.join("\n") };
    };
    expect((await run([])).code).toBe(2);
    expect((await run(["frobnicate"])).code).toBe(2);
    expect((await run(["create", "--type", "admin"])).code).toBe(2);
    expect((await run(["create", "--type", "public"])).code).toBe(2);
    const secretWithOrigin = await run(["create", "--type", "secret", "--service", "shop", "--origin", "https://shop.example"]);
    expect(secretWithOrigin.code).toBe(2);
    expect(secretWithOrigin.err).toContain("--origin applies to public keys only");
    // Every option the type does not read is refused, not dropped (re-audit).
    for (const argv of [["create", "--type", "admin", "--services", "shop", "--origin", "https://a.example"], ["create", "--type", "public", "--service", "shop", "--services", "blog"], ["create", "--type", "admin", "--services", "shop", "--service", "shop"]]) {
      expect([argv.join(" "), (await run(argv)).code]).toEqual([argv.join(" "), 2]);
    }
    expect((await run(["revoke"])).code).toBe(2);
    expect((await run(["list", "--bogus"])).code).toBe(2);
    expect((await run(["list"], { DATA_DIR: join(dataDir, "missing") })).err).toContain("no root token");
    expect((await run(["list"], { PORT: "not-a-port" })).code).toBe(2);

    const wrongToken = await run(["list", "--token", `${ROOT}x`]);
    expect(wrongToken).toMatchObject({ code: 1 });
    expect(wrongToken.err).toContain("401 unauthorized: Invalid root token");
    const invalid = await run(["create", "--type", "public", "--service", "Bad Name"]);
    expect(invalid.code).toBe(1);
    expect(invalid.err).toContain("invalid_body");
    expect(invalid.err).toContain("service_id:");
    const missing = await run(["revoke", "key_0000000000000000"]);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain("404 not_found");
    const admin = await run(["create", "--type", "admin", "--services", "shop,blog"]);
    expect(admin.code).toBe(0);
    expect(admin.err).toBe("");
    // A public key without --origin is made, and the CLI says what it will refuse.
    const bare = await run(["create", "--type", "public", "--service", "shop"]);
    expect(bare.code).toBe(0);
    expect(JSON.parse(bare.out)).toMatchObject({ type: "public", origins: [] });
    expect(bare.err).toContain("allows no page");
    expect((await run(["create", "--type", "public", "--service", "shop", "--origin", "https://shop.example"])).err).toBe("");
    expect(JSON.parse(admin.out)).toMatchObject({ type: "admin", services: ["shop", "blog"] });
  });

  // Operator audit: a start with ANALYTICS_ROOT_TOKEN leaves a file an earlier start generated, and
  // the CLI without the variable read that stale file and printed a bare 401.
  test("a 401 with the data directory's token says where the token came from; a damaged file is a usage error (exit 2), not a crash", async () => {
    const staleDir = mkdtempSync(join(tmpdir(), "keys-cli-stale-"));
    try {
      const run = async (env: Record<string, string>) => {
        const err: string[] = [];
        const code = await runKeysCli(["--url", url, "list"], { env, out: () => undefined, err: (t) => err.push(t) });
        return { code, err: err.join("\n") };
      };
      writeFileSync(join(staleDir, "root-token"), `${generateRootToken()}\n`, { mode: 0o600 });
      const stale = await run({ DATA_DIR: staleDir });
      expect(stale.code).toBe(1);
      expect(stale.err).toContain("401 unauthorized");
      expect(stale.err).toContain(`the token came from ${join(staleDir, "root-token")}`);
      // The same refusal with the token given explicitly carries no such hint.
      const explicit = await run({ ANALYTICS_ROOT_TOKEN: `${ROOT}x` });
      expect(explicit.code).toBe(1);
      expect(explicit.err).not.toContain("came from");

      writeFileSync(join(staleDir, "root-token"), "short\n");
      const damaged = await run({ DATA_DIR: staleDir });
      expect(damaged.code).toBe(2);
      expect(damaged.err).toContain("does not hold a root token");
    } finally {
      rmSync(staleDir, { recursive: true, force: true });
    }
  });
});
