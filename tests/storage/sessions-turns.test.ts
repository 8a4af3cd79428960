// Inserts into `sessions` and session page reads take turns (src/storage/sessions-turns.ts): the
// rules of the turns, on gates the test opens by hand.
import { expect, test } from "bun:test";
import { Turns } from "../../src/storage/sessions-turns.ts";

/** A task that records when it starts and ends, and ends only when released. */
function task(log: string[], name: string) {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const fn = async () => {
    log.push(`+${name}`);
    await gate;
    log.push(`-${name}`);
    return name;
  };
  return { fn, release };
}
const tick = () => new Promise((r) => setTimeout(r, 0));

test("turns of one kind run together; the other kind waits until all of them ended", async () => {
  const t = new Turns();
  const log: string[] = [];
  const [r1, r2, w1] = [task(log, "r1"), task(log, "r2"), task(log, "w1")];
  const runs = [t.run("read", r1.fn), t.run("read", r2.fn), t.run("insert", w1.fn)];
  await tick();
  expect(log).toEqual(["+r1", "+r2"]);
  r1.release();
  await tick();
  expect(log).toEqual(["+r1", "+r2", "-r1"]);
  r2.release();
  await tick();
  expect(log).toEqual(["+r1", "+r2", "-r1", "-r2", "+w1"]);
  w1.release();
  expect(await Promise.all(runs)).toEqual(["r1", "r2", "w1"]);
});

test("a waiting insert keeps later reads out (no starving), and the reads that queued behind it then run together", async () => {
  const t = new Turns();
  const log: string[] = [];
  const [r1, w1, r2, r3, w2] = [task(log, "r1"), task(log, "w1"), task(log, "r2"), task(log, "r3"), task(log, "w2")];
  const runs = [t.run("read", r1.fn), t.run("insert", w1.fn), t.run("read", r2.fn), t.run("read", r3.fn), t.run("insert", w2.fn)];
  await tick();
  expect(log).toEqual(["+r1"]); // r2 and r3 wait behind w1 though a read is running
  r1.release();
  await tick();
  expect(log).toEqual(["+r1", "-r1", "+w1"]);
  w1.release();
  await tick();
  expect(log).toEqual(["+r1", "-r1", "+w1", "-w1", "+r2", "+r3"]);
  r3.release();
  r2.release();
  await tick();
  expect(log.slice(-3)).toEqual(["-r3", "-r2", "+w2"]);
  w2.release();
  await Promise.all(runs);
});

test("a turn that throws still ends: the next one runs and the error reaches its caller", async () => {
  const t = new Turns();
  const failing = t.run("insert", async () => {
    throw new Error("insert failed");
  });
  const read = t.run("read", async () => "read ran");
  await expect(failing).rejects.toThrow("insert failed");
  expect(await read).toBe("read ran");
  // Nothing left running: a new turn of either kind starts at once.
  let started = false;
  await t.run("insert", async () => void (started = true));
  expect(started).toBe(true);
});

test("a read that waited its longest runs beside the insert (a stuck insert holds no page for good); the turns stay sound after", async () => {
  const t = new Turns();
  const log: string[] = [];
  const stuck = task(log, "stuck-insert");
  const insert = t.run("insert", stuck.fn);
  const started = performance.now();
  expect(await t.run("read", async () => "read ran", 50)).toBe("read ran");
  expect(performance.now() - started).toBeGreaterThanOrEqual(45);
  expect(log).toEqual(["+stuck-insert"]); // still running
  // The read that gave up is not counted: once the insert ends, nothing holds the turns.
  stuck.release();
  await insert;
  const [w, r] = [task(log, "w"), task(log, "r")];
  const runs = [t.run("insert", w.fn), t.run("read", r.fn, 1_000)];
  await tick();
  expect(log.slice(-1)).toEqual(["+w"]);
  w.release();
  await tick();
  expect(log.slice(-2)).toEqual(["-w", "+r"]); // admitted in time: a turn of its own,
  const w2 = task(log, "w2");
  runs.push(t.run("insert", w2.fn));
  await tick();
  expect(log.slice(-1)).toEqual(["+r"]); // which the next insert waits for
  r.release();
  await tick();
  expect(log.slice(-2)).toEqual(["-r", "+w2"]);
  w2.release();
  await Promise.all(runs);
  let ran = false;
  await t.run("insert", async () => void (ran = true));
  expect(ran).toBe(true);
});
