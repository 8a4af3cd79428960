// Realistic ingest bodies, the same shape as bench/wrk/ingest.lua builds (keep the two in sync):
// a ~330-byte custom event with a user agent, an IP, a URL with UTM, a referrer and three
// properties, from a pool of 5000 visitors, each item with its own event_id.

const UAS = [
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
  "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
];
const VISITORS = 5000;

/** Builds items with ids `<prefix>-<stream>-4000-8000-<counter>`: distinct per generator. */
export class BodyFactory {
  #counter = 0;
  readonly #prefix: string;
  constructor(readonly stream = 1, prefix?: string) {
    this.#prefix = prefix ?? Math.floor(Math.random() * 0x7fffffff).toString(16).padStart(8, "0");
  }

  item(typed: boolean): string {
    const n = ++this.#counter;
    const v = 1 + Math.floor(Math.random() * VISITORS);
    const sku = 1 + Math.floor(Math.random() * 9999);
    const id = `${this.#prefix}-${(this.stream % 65536).toString(16).padStart(4, "0")}-4000-8000-${n.toString(16).padStart(12, "0")}`;
    const ip = `${20 + (v % 180)}.${(v * 7) % 256}.${(v * 13) % 256}.${1 + (v % 250)}`;
    return `{${typed ? '"type":"event",' : ""}"event_id":"${id}","name":"add_to_cart","url":"https://shop.example/products/p-${sku}?utm_source=newsletter",`
      + `"referrer":"https://www.google.com/","ip":"${ip}","user_agent":"${UAS[v % UAS.length]}","properties":{"sku":"p-${sku}","price":19.99,"qty":${1 + (v % 3)}}}`;
  }

  event(): string {
    return this.item(false);
  }

  batch(items: number): string {
    const parts = new Array<string>(items);
    for (let i = 0; i < items; i++) parts[i] = this.item(true);
    return `{"items":[${parts.join(",")}]}`;
  }
}
