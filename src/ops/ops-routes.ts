import * as v from "valibot";
import type { App } from "../http/app-env.ts";
import { describe, jsonResponse, REQUEST_ID, RETRY_AFTER } from "../http/openapi.ts";
import type { Metrics } from "./metrics.ts";
import type { Logger } from "../logger.ts";

/** /readyz's only reason once the process is stopping (a planned stop: logged at info, not warn). */
export const SHUTTING_DOWN = "shutting down";

/** What /readyz checks: each check answers null when fine, or the reason it is not. */
export type Readiness = () => Promise<string[]>;

/** What an operations route can answer besides its own: no credential is read, no input taken. */
const OPS_ERRORS = [400, 405, 500] as const; // 400: a request no route can read (a Host naming no host)

/** `/healthz` (the process is up), `/readyz` (dependencies ready), `/metrics` (Prometheus). */
export function registerOpsRoutes(app: App, deps: { readiness: Readiness; metrics: Metrics; logger: Logger }): void {
  const ops = (summary: string, schema: v.GenericSchema, more: Record<number, ReturnType<typeof jsonResponse>> = {}) =>
    describe({ summary, tags: ["operations"], security: [], responses: { ...more, 200: jsonResponse(schema, summary) } }, OPS_ERRORS);
  const Ready = v.object({ status: v.literal("ready") });
  // A probe every few seconds would repeat the same line: readiness is logged when it changes
  // (a 503's reasons at warn, as the README's Logs section says of 503s; the way back at info).
  let lastReasons = "";
  const logChange = (reasons: string[]) => {
    const now = reasons.join("; ");
    if (now === lastReasons) return;
    if (reasons.length === 1 && reasons[0] === SHUTTING_DOWN) deps.logger.info("not ready", { reasons });
    else if (reasons.length > 0) deps.logger.warn("not ready", { reasons });
    else deps.logger.info("ready again");
    lastReasons = now;
  };
  app.get("/healthz", ops("The process is up", v.object({ status: v.literal("ok") })), (c) => c.json({ status: "ok" }));
  const NotReady = v.object({
    status: v.literal("not_ready"),
    reasons: v.array(v.string()),
    error: v.object({ code: v.literal("unavailable"), message: v.string() }),
    request_id: v.string(),
  });
  const notReady = jsonResponse(NotReady, "Not ready: the reasons, in the error body's shape", RETRY_AFTER);
  app.get("/readyz", ops("ClickHouse answers, the schema is current, the spool is below its cap (503 with reasons otherwise)", Ready, { 503: notReady }), async (c) => {
    const reasons = await deps.readiness();
    logChange(reasons);
    if (reasons.length === 0) return c.json({ status: "ready" });
    // The reasons, plus the contract's error body (code, request id) and Retry-After.
    const requestId = c.get("requestId") ?? "";
    return c.json(
      { status: "not_ready", reasons, error: { code: "unavailable", message: `Not ready: ${reasons.join("; ")}` }, request_id: requestId },
      503,
      { "Retry-After": "5" },
    );
  });
  app.get("/metrics", describe({
    summary: "Prometheus metrics (text format)",
    tags: ["operations"],
    security: [],
    responses: { 200: { description: "Prometheus text exposition format", headers: REQUEST_ID, content: { "text/plain": { schema: { type: "string" } } } } },
  }, OPS_ERRORS), async (c) => {
    for (const collect of deps.metrics.collectors) collect();
    const body = await deps.metrics.registry.metrics();
    return c.body(body, 200, { "Content-Type": deps.metrics.registry.contentType });
  });
}
