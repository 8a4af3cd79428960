// Which ClickHouse errors mean "not now" (503 with Retry-After on a request, a retried flush) rather
// than a bug (500): real ClickHouseError objects as client-web builds them from the engine's answer.
import { expect, test } from "bun:test";
import { ClickHouseError } from "@clickhouse/client-web";
import { isBackendUnavailable } from "../../src/errors.ts";
import { isDataError } from "../../src/storage/insert-rows.ts";

const ch = (code: string, message: string) => new ClickHouseError({ message, code, type: "T" });

test("overload, timeouts, memory, a database not migrated, a server shutting down and a full or failing disk are 'not now'; a bad query is not", () => {
  const notNow = [
    ch("243", "Cannot reserve 1.00 MiB, not enough space"),
    ch("159", "Timeout exceeded: elapsed 61 seconds"),
    ch("241", "Memory limit (total) exceeded"),
    ch("81", "Database analytics_db does not exist"),
    ch("202", "Too many simultaneous queries"),
    ch("236", "The server is shutting down due to a fatal error"),
    ch("1001", 'std::__1::filesystem::filesystem_error: filesystem error: in create_directories: No space left on device ["/d/tmp_insert_1"]'),
    ch("1001", "filesystem error: in create_directories: Read-only file system"),
  ];
  expect(notNow.map((e) => isBackendUnavailable(e))).toEqual(notNow.map(() => true));
  for (const e of [ch("62", "Syntax error: failed at position 1"), ch("1001", "std::exception: basic_string"), new Error("Cannot reserve")]) {
    expect(isBackendUnavailable(e)).toBe(false);
  }
});

test("a disk fault is never bad data, whatever its code; a parse error is", () => {
  expect(isDataError(ch("1001", 'std::__1::filesystem::filesystem_error: filesystem error: in create_directories: Operation not permitted ["/d/x"]'))).toBe(false);
  expect(isDataError(ch("1001", "std::exception: basic_string"))).toBe(true);
  expect(isDataError(ch("27", "Cannot parse input: expected '\"' before: 'x'"))).toBe(true);
});
