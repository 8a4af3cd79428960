// The correctness property test through the HTTP API (correctness-suite.ts) with each person's
// items sent in any order: keyed by their time plus up to 30 days, i.e. shuffled across the whole
// month the traffic spans. API.md: "back-filled traffic sessionizes as it happened", whatever the
// order: a person with many visits has many sessions in pieces at once until the items between
// them arrive, and every piece must be found again by the items that join it (session-state.ts,
// MAX_SPANS). Every answer must equal the model's, which sorts each visitor's items by time.
import { DAY } from "./traffic.ts";
import { correctnessSuite } from "./correctness-suite.ts";

correctnessSuite({ seedName: "e2e shuffled", defaultSeed: 20261130, lateMs: 30 * DAY });
