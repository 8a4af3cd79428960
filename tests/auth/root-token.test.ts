import { describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDirs } from "../helpers/temp-dirs.ts";
import { nodeRootTokenFs, readRootTokenFile, resolveRootToken, RootTokenFileError, rootTokenWarnings, type RootTokenFs } from "../../src/auth/root-token.ts";

const tempDir = tempDirs("root-token-");

describe("resolveRootToken", () => {
  test("the environment wins and nothing is written", () => {
    const dataDir = join(tempDir(), "data");
    const token = "env-root-token-0123456789abcdef";
    expect(resolveRootToken({ rootToken: token, dataDir })).toEqual({ token, generatedAt: null, source: "env" });
    expect(readRootTokenFile(dataDir)).toBeUndefined();
  });

  test("first start generates a token into <DATA_DIR>/root-token with mode 0600; later starts read it", () => {
    const dataDir = join(tempDir(), "nested", "data");
    const first = resolveRootToken({ rootToken: undefined, dataDir });
    expect(first.source).toBe("generated");
    expect(first.generatedAt).toBe(join(dataDir, "root-token"));
    expect(first.token).toMatch(/^rt_[0-9A-Za-z]{43}$/);
    expect(statSync(first.generatedAt!).mode & 0o777).toBe(0o600);
    expect(readFileSync(first.generatedAt!, "utf8").trim()).toBe(first.token);

    const second = resolveRootToken({ rootToken: undefined, dataDir });
    expect(second).toEqual({ token: first.token, generatedAt: null, source: "file" });
    expect(readRootTokenFile(dataDir)).toBe(first.token);
  });

  test("a damaged file stops the start instead of being replaced", () => {
    const dataDir = tempDir();
    writeFileSync(join(dataDir, "root-token"), "short\n");
    expect(() => resolveRootToken({ rootToken: undefined, dataDir })).toThrow(/does not hold a root token/);
    expect(readFileSync(join(dataDir, "root-token"), "utf8")).toBe("short\n");
  });

  test("losing the creation race to another process uses the winner's token", () => {
    const dataDir = tempDir();
    const winner = "rt_winnerwinnerwinnerwinnerwinner";
    let reads = 0;
    const racing: RootTokenFs = {
      ...nodeRootTokenFs,
      read: (path) => (reads++ === 0 ? undefined : nodeRootTokenFs.read(path)),
      createExclusive: (path, text, mode) => {
        writeFileSync(path, `${winner}\n`); // the other process got there first
        nodeRootTokenFs.createExclusive(path, text, mode);
      },
    };
    expect(resolveRootToken({ rootToken: undefined, dataDir }, racing)).toEqual({ token: winner, generatedAt: null, source: "file" });
  });

  // Re-audits: these crashed the start with a stack (EEXIST, ELOOP), named no file, or blocked the
  // start for good (a FIFO, /dev/zero).
  test("a dangling link, a link loop, a directory, a FIFO or a device in the file's place is an operator's error naming the file, never read", () => {
    const dataDir = tempDir();
    const path = join(dataDir, "root-token");
    const refused = (message: string) => expect(() => resolveRootToken({ rootToken: undefined, dataDir })).toThrow(new RootTokenFileError(message));
    symlinkSync(join(dataDir, "nowhere", "x"), path);
    refused(`${path} cannot be read (a dangling link): fix or delete it`);
    rmSync(path);
    symlinkSync(path, path);
    refused(`${path} cannot be read (ELOOP): fix or delete it`);
    rmSync(path);
    mkdirSync(path);
    refused(`${path} is not a regular file: fix or delete it`);
    rmSync(path, { recursive: true });
    expect(Bun.spawnSync(["mkfifo", path]).exitCode).toBe(0);
    refused(`${path} is not a regular file: fix or delete it`);
    rmSync(path);
    symlinkSync("/dev/zero", path);
    refused(`${path} is not a regular file: fix or delete it`);
  });

  // Operator audit: a non-ASCII token cannot travel in a header; a file that holds one is damaged.
  test("a file whose token is not visible ASCII is damaged too", () => {
    const dataDir = tempDir();
    writeFileSync(join(dataDir, "root-token"), "tökentökentökentökentöken\n");
    expect(() => resolveRootToken({ rootToken: undefined, dataDir })).toThrow(/does not hold a root token/);
  });
});

describe("rootTokenWarnings", () => {
  test("a token file others may read is warned about; a 0600 one is not", () => {
    const dataDir = tempDir();
    const resolved = resolveRootToken({ rootToken: undefined, dataDir });
    const reread = resolveRootToken({ rootToken: undefined, dataDir });
    expect(rootTokenWarnings({ dataDir }, resolved)).toEqual([]); // generated now: nothing to say
    expect(rootTokenWarnings({ dataDir }, reread)).toEqual([]);
    chmodSync(join(dataDir, "root-token"), 0o644);
    const [warning, ...rest] = rootTokenWarnings({ dataDir }, reread);
    expect(rest).toEqual([]);
    expect(warning).toContain("mode 0644");
    expect(warning).toContain("chmod 600");
  });

  test("ANALYTICS_ROOT_TOKEN with a file holding another token is warned about (the keys CLI would read the file)", () => {
    const dataDir = tempDir();
    const fileToken = resolveRootToken({ rootToken: undefined, dataDir }).token;
    const env = (token: string) => resolveRootToken({ rootToken: token, dataDir });
    expect(rootTokenWarnings({ dataDir }, env(fileToken))).toEqual([]);
    const [warning] = rootTokenWarnings({ dataDir }, env("env-root-token-0123456789abcdef"));
    expect(warning).toContain("holds another token than ANALYTICS_ROOT_TOKEN");
    expect(rootTokenWarnings({ dataDir: join(dataDir, "none") }, env("env-root-token-0123456789abcdef"))).toEqual([]);
  });

  // Third re-audit: a FIFO in the file's place was called "another token".
  test("ANALYTICS_ROOT_TOKEN beside a damaged file or a FIFO in its place: the warning says what is wrong with it", () => {
    const dataDir = tempDir();
    const path = join(dataDir, "root-token");
    const env = resolveRootToken({ rootToken: "env-root-token-0123456789abcdef", dataDir });
    expect(Bun.spawnSync(["mkfifo", path]).exitCode).toBe(0);
    expect(rootTokenWarnings({ dataDir }, env)).toEqual([`${path} is not a regular file: fix or delete it (ANALYTICS_ROOT_TOKEN is the token in use; the keys CLI reads the file when the variable is not set)`]);
    rmSync(path);
    writeFileSync(path, "short\n");
    const [warning, ...rest] = rootTokenWarnings({ dataDir }, env);
    expect(rest).toEqual([]);
    expect(warning).toStartWith(`${path} does not hold a root token (24 or more visible ASCII characters on one line): fix or delete it`);
  });
});
