// The correctness property test through the HTTP API (correctness-suite.ts), with each person's
// items sent in time order from request to request (a batch may list its own items in any order).
import { correctnessSuite } from "./correctness-suite.ts";

correctnessSuite({ seedName: "e2e correctness", defaultSeed: 20261128 });
