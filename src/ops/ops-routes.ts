import type { App } from "../http/app-env.ts";
import type { Metrics } from "./metrics.ts";

/** What /readyz checks: each check answers null when fine, or the reason it is not. */
export type Readiness = () => Promise<string[]>;

/** `/healthz` (the process is up), `/readyz` (dependencies ready), `/metrics` (Prometheus). */
export function registerOpsRoutes(app: App, deps: { readiness: Readiness; metrics: Metrics }): void {
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", async (c) => {
    const reasons = await deps.readiness();
    if (reasons.length === 0) return c.json({ status: "ready" });
    return c.json({ status: "not_ready", reasons }, 503);
  });
  app.get("/metrics", async (c) => {
    const body = await deps.metrics.registry.metrics();
    return c.body(body, 200, { "Content-Type": deps.metrics.registry.contentType });
  });
}
