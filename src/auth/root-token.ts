// The operator's root token: ANALYTICS_ROOT_TOKEN when set, else the one kept in
// <DATA_DIR>/root-token, else a new one written there (mode 0600) at first start. Runs in main.ts
// only, so node:fs is fine here. Several instances must share one token: set the env variable.
import { chmodSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config.ts";
import { DataFileError, readSmallFile } from "../private-files.ts";
import { generateRootToken } from "./key-format.ts";

export const ROOT_TOKEN_FILE = "root-token";

/** The root token file exists but holds no usable token: the operator fixes or deletes it (or sets ANALYTICS_ROOT_TOKEN). */
export class RootTokenFileError extends DataFileError {}

/** The file operations resolveRootToken needs (node:fs by default; tests pass their own). */
export interface RootTokenFs {
  /** The file's text, or undefined when it does not exist. */
  read(path: string): string | undefined;
  /** Creates the file with `mode`; throws if it exists already (another process won the race). */
  createExclusive(path: string, text: string, mode: number): void;
  mkdirp(path: string): void;
}

export const nodeRootTokenFs: RootTokenFs = {
  read(path) {
    try {
      return readSmallFile(path, 4096);
    } catch (err) {
      // A directory, FIFO, device, link loop or dangling link in its place: never read (a FIFO would block the start).
      if (err instanceof DataFileError) throw new RootTokenFileError(err.message);
      throw err;
    }
  },
  createExclusive(path, text, mode) {
    writeFileSync(path, text, { mode, flag: "wx" });
    // The umask can only remove bits from `mode`, but make the intent explicit all the same.
    chmodSync(path, mode);
  },
  mkdirp(path) {
    mkdirSync(path, { recursive: true, mode: 0o700 });
  },
};

export interface ResolvedRootToken {
  token: string;
  /** Path of the file just written, so main.ts can say where (never what); null otherwise. */
  generatedAt: string | null;
  source: "env" | "file" | "generated";
}

/** Finds or creates the root token (see the file comment). Throws when the file is unusable. */
export function resolveRootToken(config: Pick<Config, "rootToken" | "dataDir">, fs: RootTokenFs = nodeRootTokenFs): ResolvedRootToken {
  if (config.rootToken) return { token: config.rootToken, generatedAt: null, source: "env" };
  const path = join(config.dataDir, ROOT_TOKEN_FILE);
  const existing = readToken(fs, path);
  if (existing !== undefined) return { token: existing, generatedAt: null, source: "file" };
  fs.mkdirp(config.dataDir);
  const token = generateRootToken();
  try {
    fs.createExclusive(path, `${token}\n`, 0o600);
  } catch (err) {
    // Two processes starting on one data dir: the first file wins, and both use it.
    const winner = (err as NodeJS.ErrnoException).code === "EEXIST" ? readToken(fs, path) : undefined;
    if (winner === undefined) throw err;
    return { token: winner, generatedAt: null, source: "file" };
  }
  return { token, generatedAt: path, source: "generated" };
}

/**
 * What the operator should hear about the token's file at start: a file others may read (the token
 * manages every key), or a file whose token is not the one in use because ANALYTICS_ROOT_TOKEN
 * is set (the keys CLI run without the variable would read the file and get 401).
 */
export function rootTokenWarnings(config: Pick<Config, "dataDir">, resolved: ResolvedRootToken): string[] {
  const path = join(config.dataDir, ROOT_TOKEN_FILE);
  if (resolved.source === "file") {
    const mode = statSync(path).mode & 0o777;
    return mode & 0o077 ? [`${path} can be read by other users (mode ${mode.toString(8).padStart(4, "0")}): chmod 600 it`] : [];
  }
  if (resolved.source === "env") {
    let inFile: string | undefined;
    try {
      inFile = readRootTokenFile(config.dataDir);
    } catch (err) {
      // Damaged, or not a file at all: not the token in use either, and the CLI would stop on it.
      return [`${(err as Error).message} (ANALYTICS_ROOT_TOKEN is the token in use; the keys CLI reads the file when the variable is not set)`];
    }
    if (inFile !== undefined && inFile !== resolved.token) {
      return [`${path} holds another token than ANALYTICS_ROOT_TOKEN, which is the one in use: the keys CLI needs ANALYTICS_ROOT_TOKEN set too (or delete the file)`];
    }
  }
  return [];
}

/** Reads the root token file for tools (the keys CLI); undefined when there is none. */
export function readRootTokenFile(dataDir: string, fs: RootTokenFs = nodeRootTokenFs): string | undefined {
  return readToken(fs, join(dataDir, ROOT_TOKEN_FILE));
}

function readToken(fs: RootTokenFs, path: string): string | undefined {
  const text = fs.read(path);
  if (text === undefined) return undefined;
  const token = text.trim();
  // Never replace a damaged file silently: that would change the operator's token under them.
  if (token.length < 24 || !/^[\x21-\x7e]+$/.test(token)) throw new RootTokenFileError(`${path} does not hold a root token (24 or more visible ASCII characters on one line): fix or delete it`);
  return token;
}
