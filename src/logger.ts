// Structured JSON logs, one object per line on stdout; the level is fixed at start.
export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** A logger that writes JSON lines at or above `level` through `write` (stdout by default). */
export function createLogger(level: LogLevel, write: (line: string) => void = (l) => console.log(l)): Logger {
  const at = (lvl: Exclude<LogLevel, "silent">) => (msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[lvl] < ORDER[level]) return;
    write(JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, ...fields }));
  };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

/** A logger that drops everything (tests, tools). */
export const silentLogger: Logger = createLogger("silent");

/** A throttled warning (see throttledWarn); `reset` forgets what it said and returns how many it held back since. */
export interface ThrottledWarn {
  (msg: string, fields: Record<string, unknown>): void;
  reset(): number;
}

/**
 * A warning said at most once per `intervalMs` for the same message and fields, the next one
 * counting those held back (`repeated`). For errors a client repeats on every reconnect attempt
 * (ioredis: one "error" per attempt, every 500 ms while Valkey is down).
 */
export function throttledWarn(logger: Pick<Logger, "warn">, intervalMs = 30_000, now = () => Date.now()): ThrottledWarn {
  const last = new Map<string, { at: number; held: number }>();
  const warn = (msg: string, fields: Record<string, unknown>) => {
    const key = `${msg}\0${JSON.stringify(fields)}`;
    const seen = last.get(key);
    const t = now();
    if (seen && t - seen.at < intervalMs) {
      seen.held++;
      return;
    }
    logger.warn(msg, seen?.held ? { ...fields, repeated: seen.held } : fields);
    if (last.size >= 100) last.clear(); // a few distinct errors in practice; never unbounded
    last.set(key, { at: t, held: 0 });
  };
  return Object.assign(warn, {
    reset: () => {
      let held = 0;
      for (const seen of last.values()) held += seen.held;
      last.clear();
      return held;
    },
  });
}
