// The time zones the ClickHouse behind this process knows (system.time_zones), for the `tz` check
// (http/validate.ts, useEngineTimeZones). Read in the background and retried until read: a start
// must not wait on a ClickHouse that is down, and an instance started while it was down must not
// check `tz` against Intl alone for the rest of its life (an operator audit found such an instance
// answering 200 on four routes and 400 on the fifth for a zone ClickHouse does not know).
import type { ClickHouseClient } from "@clickhouse/client-web";
import type { Logger } from "../logger.ts";

export const TIME_ZONES_RETRY_MS = 5_000;

/** Reads the zones and hands them to `use`, retrying every `retryMs` until it succeeds; `stop` ends the retries. */
export function loadEngineTimeZones(
  client: Pick<ClickHouseClient, "query">,
  use: (zones: string[]) => void,
  logger: Pick<Logger, "info" | "warn">,
  retryMs = TIME_ZONES_RETRY_MS,
): { stop(): void; read: Promise<void> } {
  let stopped = false;
  let failures = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let done!: () => void;
  const read = new Promise<void>((resolve) => (done = resolve));
  const attempt = () => {
    client.query({ query: "SELECT time_zone FROM system.time_zones", format: "JSONEachRow" })
      .then((r) => r.json<{ time_zone: string }>())
      .then((rows) => {
        use(rows.map((z) => z.time_zone));
        if (failures > 0) logger.info("time zones of ClickHouse read", { attempts: failures + 1 });
        done();
      })
      .catch((err) => {
        if (failures++ === 0) logger.warn("time zones of ClickHouse not read; tz is checked against Intl only until they are (retried)", { error: String(err), retry_ms: retryMs });
        if (stopped) return;
        timer = setTimeout(attempt, retryMs);
        timer.unref?.();
      });
  };
  attempt();
  return {
    read,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
