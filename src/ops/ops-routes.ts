import * as v from "valibot";
import type { App } from "../http/app-env.ts";
import { describe, jsonResponse } from "../http/openapi.ts";
import type { Metrics } from "./metrics.ts";
import type { Logger } from "../logger.ts";

/** /readyz's only reason once the process is stopping (a planned stop: logged at info, not warn). */
export const SHUTTING_DOWN = "shutting down";

/** What /readyz checks: each check answers null when fine, or the reason it is not. */
export type Readiness = () => Promise<string[]>;

/** `/healthz` (the process is up), `/readyz` (dependencies ready), `/metrics` (Prometheus). */
export function registerOpsRoutes(app: App, deps: { readiness: Readiness; metrics: Metrics; logger: Logger }): void {
  const ops = (summary: string, schema: v.GenericSchema) =>
    describe({ summary, tags: ["operations"], security: [], responses: { 200: jsonResponse(schema, summary) } });
  const Ready = v.object({
    status: v.string(),
    reasons: v.optional(v.array(v.string())),
    error: v.optional(v.object({ code: v.string(), message: v.string() })),
    request_id: v.optional(v.string()),
  });
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
  app.get("/readyz", ops("ClickHouse answers, the schema is current, the spool is below its cap (503 with reasons otherwise)", Ready), async (c) => {
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
    responses: { 200: { description: "Prometheus text exposition format", content: { "text/plain": { schema: { type: "string" } } } } },
  }), async (c) => {
    for (const collect of deps.metrics.collectors) collect();
    const body = await deps.metrics.registry.metrics();
    return c.body(body, 200, { "Content-Type": deps.metrics.registry.contentType });
  });
}
