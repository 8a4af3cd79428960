// The correctness property test through the HTTP API (correctness-suite.ts) with items that arrive
// late: each person's items are sent up to 2 hours out of time order across requests, so an item
// often lands between two sessions already stored (a gap of 30 minutes or more between them) and
// closer than 30 minutes to both. API.md: "The 30-minute idle rule compares item times, so
// back-filled traffic sessionizes as it happened": every answer must equal the model's, which
// sorts each visitor's items by time and splits at gaps of 30 minutes or more, whatever the order
// they were sent in. The service merges the two sessions; items stored under the later one's id
// are read as the merged session's (session_aliases).
import { HOUR } from "./traffic.ts";
import { correctnessSuite } from "./correctness-suite.ts";

correctnessSuite({ seedName: "e2e late items", defaultSeed: 20261129, lateMs: 2 * HOUR });
