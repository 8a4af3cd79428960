import type { MiddlewareHandler } from "hono";

const CLIENT_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Gives every request an id (the client's X-Request-Id when it is sane) and echoes it back. */
export function requestId(): MiddlewareHandler {
  return async function requestIdMiddleware(c, next) {
    const sent = c.req.header("x-request-id");
    const id = sent && CLIENT_ID.test(sent) ? sent : crypto.randomUUID();
    c.set("requestId", id);
    c.header("X-Request-Id", id);
    await next();
  };
}
