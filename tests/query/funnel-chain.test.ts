// The README's funnel-median examples, as the chain replay reads them (src/query/funnel-chain.ts).
import { expect, test } from "bun:test";
import { funnelChain } from "../../src/query/funnel-chain.ts";

const S = 1000;
const times = (events: Array<[number, number]>, windowS = 86_400) => {
  const chain = funnelChain(events.map(([t, step]) => [t * S, step] as const), windowS * S);
  return { level: chain.level, times: chain.times.map((t) => t / S) };
};

test("a later repeat of a step replaces it in the chain the next steps extend", () => {
  expect(times([[0, 1], [60, 2], [600, 2], [700, 3]])).toEqual({ level: 3, times: [0, 600, 700] });
});

test("a later step 1 restarts the chain", () => {
  expect(times([[0, 1], [100, 1], [200, 2]])).toEqual({ level: 2, times: [100, 200] });
});

test("the chain that reached the unit's highest step first gives its times", () => {
  // Step 4 cannot follow (no step 3): the highest step is 2, reached first at 60 s.
  expect(times([[0, 1], [60, 2], [600, 2], [700, 4]])).toEqual({ level: 2, times: [0, 60] });
});

test("a step past the window of its chain's step 1 does not extend it", () => {
  expect(times([[0, 1], [61, 2]], 60)).toEqual({ level: 1, times: [0] });
  expect(times([[0, 1], [60, 2]], 60)).toEqual({ level: 2, times: [0, 60] });
});

test("events arrive in any order: the chain follows time, then step", () => {
  expect(times([[700, 3], [600, 2], [0, 1], [60, 2]])).toEqual({ level: 3, times: [0, 600, 700] });
  // At one instant a step-1 event comes before the step-2 event it starts.
  expect(times([[5, 2], [5, 1]])).toEqual({ level: 2, times: [5, 5] });
});
