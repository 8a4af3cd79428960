import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import Redis from "ioredis";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { saltFile } from "../../src/ingest/enrich/file-salt-store.ts";
import {
  createMemorySaltStore,
  createValkeySaltStore,
  SALT_RETENTION_DAYS,
} from "../../src/ingest/enrich/salt-store.ts";
import { DAY_MS, utcDay } from "../../src/iso-time.ts";

describe("utcDay", () => {
  test("is the UTC date, whatever the offset of the instant", () => {
    expect(utcDay(Date.parse("2026-03-01T23:59:59.999-05:00"))).toBe("2026-03-02");
    expect(utcDay(new Date("2026-03-01T00:00:00Z"))).toBe("2026-03-01");
  });
});

// Stores prune days older than the retention window relative to their clock, so tests pin it.
const NOW = Date.parse("2026-03-10T12:00:00Z");
const now = () => NOW;

describe("createMemorySaltStore", () => {
  test("one 32-byte salt per day, the same on every call", async () => {
    const store = createMemorySaltStore({ now });
    const a = await store.saltFor("2026-03-10");
    expect(a).toHaveLength(32);
    expect(await store.saltFor("2026-03-10")).toBe(a);
    expect(Buffer.from(await store.saltFor("2026-03-09")).equals(Buffer.from(a))).toBe(false);
  });

  test("separate stores (separate processes) have separate salts", async () => {
    const [a, b] = await Promise.all([
      createMemorySaltStore({ now }).saltFor("2026-03-10"),
      createMemorySaltStore({ now }).saltFor("2026-03-10"),
    ]);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
  });

  test(`keeps a day's salt for ${SALT_RETENTION_DAYS} days, then forgets it`, async () => {
    let now = Date.parse("2026-03-01T12:00:00Z");
    const store = createMemorySaltStore({ now: () => now });
    const old = await store.saltFor("2026-02-01"); // a 28-day-old back-filled item
    now = Date.parse("2026-02-01T00:00:00Z") + SALT_RETENTION_DAYS * DAY_MS + 12 * 3_600_000; // 03-04 noon
    expect(await store.saltFor("2026-02-01")).toBe(old);
    now += DAY_MS;
    expect(await store.saltFor("2026-02-01")).not.toBe(old);
  });

  test("refuses what is not a YYYY-MM-DD date", async () => {
    const store = createMemorySaltStore();
    for (const day of ["20260301", "2026-3-1", "2026-13-01", "2026-02-30", "2026-03-01T00:00:00Z", ""]) {
      await expect(store.saltFor(day)).rejects.toThrow(RangeError);
    }
  });
});

// A real Valkey: the shared test server when the run's preload started one, else our own.
let valkeyUrl = process.env.TEST_VALKEY_URL;
let ownServer: ReturnType<typeof Bun.spawn> | undefined;
const clients: Redis[] = [];
const prefix = `test:enrich:salt:${crypto.randomUUID()}:`;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

function client(url = valkeyUrl!): Redis {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  clients.push(redis);
  return redis;
}

beforeAll(async () => {
  if (valkeyUrl) return;
  const port = await freePort();
  const binary = Bun.which("valkey-server") ?? "/usr/bin/valkey-server";
  ownServer = Bun.spawn([binary, "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdout: "ignore",
    stderr: "inherit",
  });
  valkeyUrl = `redis://127.0.0.1:${port}`;
  const probe = new Redis(valkeyUrl, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  for (let attempt = 0; ; attempt++) {
    try {
      await probe.connect();
      await probe.ping();
      break;
    } catch (error) {
      if (attempt > 50) throw error;
      await Bun.sleep(100);
    }
  }
  probe.disconnect();
});

afterAll(async () => {
  if (valkeyUrl && clients.length > 0) {
    const keys = await clients[0]!.keys(`${prefix}*`);
    if (keys.length > 0) await clients[0]!.del(...keys);
  }
  for (const redis of clients) redis.disconnect();
  if (ownServer) {
    ownServer.kill();
    await ownServer.exited;
  }
});

describe("createValkeySaltStore", () => {
  test("every instance gets the salt the first one wrote, stored as hex for 32 days", async () => {
    const redis = client();
    const day = "2026-03-01";
    const [a, b] = await Promise.all([
      createValkeySaltStore(redis, { keyPrefix: prefix }).saltFor(day),
      createValkeySaltStore(client(), { keyPrefix: prefix }).saltFor(day),
    ]);
    expect(a).toHaveLength(32);
    expect(Buffer.from(b).equals(Buffer.from(a))).toBe(true);
    expect(await redis.get(`${prefix}${day}`)).toBe(Buffer.from(a).toString("hex"));
    const ttl = await redis.ttl(`${prefix}${day}`);
    expect(ttl).toBeGreaterThan(32 * 86_400 - 60);
    expect(ttl).toBeLessThanOrEqual(32 * 86_400);
  });

  test("an existing salt is never overwritten", async () => {
    const redis = client();
    const existing = "ab".repeat(32);
    await redis.set(`${prefix}2026-03-02`, existing);
    const salt = await createValkeySaltStore(redis, { keyPrefix: prefix }).saltFor("2026-03-02");
    expect(Buffer.from(salt).toString("hex")).toBe(existing);
  });

  test("asks Valkey once per day, then answers from the process", async () => {
    const redis = client();
    const store = createValkeySaltStore(redis, { keyPrefix: prefix, now });
    const burst = await Promise.all(Array.from({ length: 10 }, () => store.saltFor("2026-03-03")));
    expect(new Set(burst).size).toBe(1);
    await redis.del(`${prefix}2026-03-03`);
    expect(await store.saltFor("2026-03-03")).toBe(burst[0]!);
    expect(await redis.exists(`${prefix}2026-03-03`)).toBe(0);
  });

  test("a malformed stored salt rejects, and is not cached", async () => {
    const redis = client();
    const store = createValkeySaltStore(redis, { keyPrefix: prefix });
    await redis.set(`${prefix}2026-03-04`, "not-hex");
    await expect(store.saltFor("2026-03-04")).rejects.toThrow(/malformed/);
    await redis.del(`${prefix}2026-03-04`);
    expect(await store.saltFor("2026-03-04")).toHaveLength(32);
  });

  test("rejects when Valkey cannot be reached, rather than inventing a local salt", async () => {
    const port = await freePort(); // nothing listens there
    const redis = new Redis(`redis://127.0.0.1:${port}`, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => null,
    });
    redis.on("error", () => {}); // the refused connection is the point; keep it out of the log
    clients.push(redis);
    await expect(createValkeySaltStore(redis, { keyPrefix: prefix }).saltFor("2026-03-05")).rejects.toThrow();
  });

  test("after Valkey lost a salt, the DATA_DIR copy puts it back on the next start, and a running instance republishes its own", async () => {
    const redis = client();
    const dir = mkdtempSync(join(tmpdir(), "salt-backup-"));
    try {
      const day = "2026-03-06";
      const first = createValkeySaltStore(redis, { keyPrefix: prefix, now, backup: saltFile(join(dir, "salts.json"), { now }) });
      const salt = Buffer.from(await first.saltFor(day)).toString("hex");
      // Valkey loses it; the instance restarts: its file offers the same salt.
      await redis.del(`${prefix}${day}`);
      const restarted = createValkeySaltStore(redis, { keyPrefix: prefix, now, backup: saltFile(join(dir, "salts.json"), { now }) });
      expect(Buffer.from(await restarted.saltFor(day)).toString("hex")).toBe(salt);
      // Lost again while instances run: a running one puts its salt back; a new instance
      // without a copy of its own then reads it.
      await redis.del(`${prefix}${day}`);
      await first.republish();
      expect(Buffer.from(await createValkeySaltStore(client(), { keyPrefix: prefix, now }).saltFor(day)).toString("hex")).toBe(salt);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("refuses a malformed day before touching Valkey", async () => {
    await expect(createValkeySaltStore(client(), { keyPrefix: prefix }).saltFor("yesterday")).rejects.toThrow(RangeError);
  });
});
