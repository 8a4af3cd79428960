// The service as `npm start` runs it (src/runtime-flags.ts): a request line or headers over Bun's
// default 16 KiB reach the app, so a long bad value gets the contract's 400 with X-Request-Id and
// an error body instead of Bun's bare 431.
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { BUN_FLAGS } from "../../src/runtime-flags.ts";
import { useSinkFixture } from "../helpers/service-process.ts";

const sink = useSinkFixture();

test("a 20 KB query value is the app's 400 invalid_query, with X-Request-Id; past 64 KiB it is Bun's 431", async () => {
  const s = await sink.startService();
  const admin = await s.createKey({ type: "admin", services: ["*"] });
  const long = await s.fetch(`/v1/sessions?service_id=shop&country=${"x".repeat(20_000)}`, { headers: { Authorization: `Bearer ${admin}` } });
  expect(long.status).toBe(400);
  const body = (await long.json()) as { error: { code: string; issues: Array<{ path: string }> }; request_id: string };
  expect(body.error.code).toBe("invalid_query");
  expect(body.error.issues.map((i) => i.path)).toEqual(["country"]);
  expect(long.headers.get("x-request-id")).toBe(body.request_id);
  const huge = await s.fetch(`/v1/sessions?service_id=shop&country=${"x".repeat(70_000)}`, { headers: { Authorization: `Bearer ${admin}` } });
  expect(huge.status).toBe(431);
}, 60_000);

test("package.json's start and the Dockerfile's CMD run bun with the same flags as the test and bench helpers", () => {
  const start = (JSON.parse(readFileSync("package.json", "utf8")) as { scripts: { start: string } }).scripts.start;
  expect(start).toBe(["bun", ...BUN_FLAGS, "src/main.ts"].join(" "));
  const cmd = readFileSync("Dockerfile", "utf8").split("\n").filter((l) => l.startsWith("CMD ")).at(-1)!;
  expect(JSON.parse(cmd.slice(4))).toEqual(["bun", ...BUN_FLAGS, "src/main.ts"]);
});
