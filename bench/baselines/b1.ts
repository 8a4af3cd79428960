// B1: a bare Bun.serve that reads `await req.json()` and answers 204 (HTTP + JSON parse, no work).
// Usage: bun bench/baselines/b1.ts <port>
const port = Number(process.argv[2] ?? 0);
let parsed = 0;
const server = Bun.serve({
  port,
  hostname: "127.0.0.1",
  maxRequestBodySize: 2 * 1024 * 1024,
  fetch: async (req) => {
    const body = await req.json();
    if (body !== null) parsed++; // keep the parse observable
    return new Response(null, { status: 204 });
  },
});
console.log(JSON.stringify({ msg: "listening", port: server.port }));
process.on("SIGTERM", () => {
  console.log(JSON.stringify({ msg: "parsed", parsed }));
  process.exit(0);
});

export {};
