// Query parameters for client-web's `{name:Type}` binding. Every value that comes from a request
// goes through `bind`, so no request text is ever spliced into SQL.
import type { ClickHouseClient } from "@clickhouse/client-web";

/** Collects named parameters while a statement is assembled. */
export class SqlParams {
  readonly values: Record<string, unknown> = {};
  private next = 0;

  /** Binds `value` and returns its placeholder, e.g. `{p3:String}`. */
  bind(type: "String" | "Int64" | "UInt32" | "UInt64" | "Array(String)", value: unknown): string {
    const name = `p${this.next++}`;
    this.values[name] = value;
    return `{${name}:${type}}`;
  }

  /** A DateTime64(3, 'UTC') constant for epoch ms, comparable with the raw tables' times. */
  instant(ms: number): string {
    return `fromUnixTimestamp64Milli(${this.bind("Int64", ms)}, 'UTC')`;
  }

  /** A DateTime('UTC') constant for an epoch-ms instant on a whole second (view hour columns). */
  second(ms: number): string {
    return `toDateTime(${this.bind("Int64", Math.floor(ms / 1000))}, 'UTC')`;
  }
}

/** Runs a SELECT and returns its rows as objects (JSONEachRow). */
export async function selectRows<T>(ch: ClickHouseClient, query: string, params: SqlParams): Promise<T[]> {
  const result = await ch.query({ query, query_params: params.values, format: "JSONEachRow" });
  return result.json<T>();
}
