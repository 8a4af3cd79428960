// Event ids already stored, asked of ClickHouse: for ids the dedup window no longer remembers.
// The window (dedup.ts) holds an id for 24 hours after it was received. An item sent again later
// than that (a back-end re-running a back-fill days after the first run) carries an item time
// older than the window, since its first copy was received after its time: only such items, with
// a client-supplied event_id, are looked up here, by id within their UTC days (the item tables'
// ORDER BY starts with service and day, so this reads a few index granules per table).
import type { ClickHouseClient } from "@clickhouse/client-web";
import { utcDay } from "../iso-time.ts";

/** Every table that stores items with an event_id (the sessions table has none: session items are in session_items). */
export const ITEM_TABLES = ["events", "page_views", "funnel_events", "errors", "web_vitals", "session_items"] as const;

export type StoredEventIds = (serviceId: string, items: ReadonlyArray<{ eventId: string; time: number }>) => Promise<Set<string>>;

/** Which of `items`' event ids are stored for the service on their item's UTC day. */
export function storedEventIds(client: ClickHouseClient): StoredEventIds {
  return async (serviceId, items) => {
    if (items.length === 0) return new Set();
    const where = "service_id = {service:String} AND toDate(timestamp) IN {days:Array(Date)} AND event_id IN {ids:Array(UUID)}";
    const rows = await (await client.query({
      query: ITEM_TABLES.map((t) => `SELECT lower(toString(event_id)) AS id FROM ${t} WHERE ${where}`).join(" UNION ALL "),
      query_params: {
        service: serviceId,
        days: [...new Set(items.map((i) => utcDay(i.time)))],
        ids: [...new Set(items.map((i) => i.eventId))],
      },
      format: "JSONCompactEachRow",
    })).json<[string]>();
    return new Set(rows.map((r) => r[0]));
  };
}

/**
 * Which of `claims` (`service:event_id` keys, as dedup.ts claims them, with the item's time) are
 * stored: the claims a crashed process left pending whose rows got written anyway.
 */
export async function storedClaims(client: ClickHouseClient, claims: ReadonlyArray<{ key: string; time: number }>): Promise<Set<string>> {
  const byService = new Map<string, Array<{ eventId: string; time: number }>>();
  for (const { key, time } of claims) {
    const at = key.indexOf(":");
    const service = key.slice(0, at);
    let list = byService.get(service);
    if (!list) byService.set(service, (list = []));
    list.push({ eventId: key.slice(at + 1), time });
  }
  const lookup = storedEventIds(client);
  const found = new Set<string>();
  for (const [service, items] of byService) for (const id of await lookup(service, items)) found.add(`${service}:${id}`);
  return found;
}
