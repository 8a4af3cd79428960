// What this project writes under DATA_DIR (every tenant's rows in the spool and the embedded
// engine, the keys' hashes, the root token, the salts) is its user's alone. Every entry point that
// can create files there calls this first: the service (main.ts), `npm run migrate` and
// `npm run clickhouse`. A directory that already exists keeps its mode.
export function keepFilesPrivate(): void {
  process.umask(0o077);
}
