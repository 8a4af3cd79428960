// Flags of the `bun` command that runs src/main.ts. Bun answers a request whose request line and
// headers exceed --max-http-header-size (default 16 KiB) with a bare 431 before the app sees it:
// no X-Request-Id, no error body. At 64 KiB a long query string or header reaches the app, which
// names the offending parameter in a 400 like any other bad value (API.md: every response
// carries X-Request-Id). package.json's `start` and the Dockerfile's CMD spell the same flags
// (tests/config.test.ts checks that they do); test and benchmark helpers start the service with
// these.
export const BUN_FLAGS = ["--max-http-header-size=65536"] as const;
