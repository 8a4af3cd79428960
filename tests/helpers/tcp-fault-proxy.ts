// A TCP proxy on loopback that can "hang" the server behind it, for tests of a ClickHouse that
// accepts connections but never answers. Stopping the real server with SIGSTOP does the same, but
// the embedded endpoint did not always come back cleanly from it (and every later test in the
// run then failed), so the fault is injected here, between the service and the server.
//
//   const proxy = await startTcpFaultProxy(sink.ch.port);
//   const s = await sink.startService({ clickhouseUrl: proxy.url });
//   proxy.hang();     // bytes stop flowing both ways; new connections are accepted and held
//   proxy.resume();   // held bytes and connections go through again
//   proxy.cutReplyTo("NX"); // the next request whose bytes contain "NX" reaches the server, and its
//                           // connection is cut before the answer comes back (once)
//   await proxy.close();
import { createConnection, createServer, type Socket } from "node:net";

export interface TcpFaultProxy {
  /** `http://127.0.0.1:<port>`: use it where the server's URL would go. */
  readonly url: string;
  hang(): void;
  resume(): void;
  /**
   * Once: the next request (bytes from the client) containing `marker` is passed to the server,
   * then both sides of its connection are closed as soon as the server starts answering, so the
   * request ran and its answer is lost. Resolves when that happened.
   */
  cutReplyTo(marker: string): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpFaultProxy(upstreamPort: number): Promise<TcpFaultProxy> {
  let hung = false;
  const sockets = new Set<Socket>();
  let cut: { marker: string; done: () => void } | undefined;
  /** Connections accepted while hung: joined to the upstream on resume. */
  const held: Array<() => void> = [];

  const pipe = (client: Socket) => {
    const upstream = createConnection({ host: "127.0.0.1", port: upstreamPort });
    sockets.add(upstream);
    upstream.on("close", () => sockets.delete(upstream));
    /** Set when this connection carried the request whose answer is to be lost. */
    let cutting: (() => void) | undefined;
    client.on("data", (chunk: Buffer) => {
      if (cut && chunk.includes(cut.marker)) {
        cutting = cut.done;
        cut = undefined;
      }
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (cutting === undefined) return void client.write(chunk);
      client.destroy();
      upstream.destroy();
      cutting();
    });
    for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
      from.on("end", () => to.end());
      from.on("error", () => to.destroy());
    }
  };

  const server = createServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => {});
    if (hung) {
      client.pause();
      held.push(() => pipe(client));
    } else {
      pipe(client);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };

  return {
    url: `http://127.0.0.1:${port}`,
    hang() {
      hung = true;
      for (const s of sockets) s.pause();
    },
    resume() {
      hung = false;
      // Join held connections first (listeners on a paused socket see nothing yet), then let go.
      for (const join of held.splice(0)) join();
      for (const s of sockets) s.resume();
    },
    cutReplyTo(marker) {
      return new Promise<void>((resolve) => (cut = { marker, done: resolve }));
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
