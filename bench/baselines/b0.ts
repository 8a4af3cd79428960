// B0: a bare Bun.serve that answers 204 without reading the body (the HTTP stack's ceiling).
// Usage: bun bench/baselines/b0.ts <port>
const port = Number(process.argv[2] ?? 0);
const server = Bun.serve({
  port,
  hostname: "127.0.0.1",
  maxRequestBodySize: 2 * 1024 * 1024,
  fetch: () => new Response(null, { status: 204 }),
});
console.log(JSON.stringify({ msg: "listening", port: server.port }));
process.on("SIGTERM", () => process.exit(0));

export {};
