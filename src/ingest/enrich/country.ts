import { isPublicIp, normaliseIp } from "./ip-address.ts";

// ISO 3166-1 alpha-2 (Debian iso-codes), plus XK: Kosovo has no official code yet, and
// Cloudflare, Vercel and CloudFront all send XK for it.
const ISO_COUNTRIES = new Set(
  `AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
   BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
   DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
   GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
   KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
   MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
   PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
   SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
   VN VU WF WS YE YT ZA ZM ZW XK`.split(/\s+/),
);

/** The uppercase ISO 3166-1 alpha-2 code, or null for unknown markers (XX, T1 = Tor, ZZ) and junk. */
export function normaliseCountry(code: string | null | undefined): string | null {
  const upper = (code ?? "").trim().toUpperCase();
  return ISO_COUNTRIES.has(upper) ? upper : null;
}

// Checked in order; a deployment normally sits behind one of these edges, which sets its header
// itself (a client-sent one is overwritten), so the header is only believed behind a trusted proxy.
const EDGE_COUNTRY_HEADERS = ["cf-ipcountry", "x-vercel-ip-country", "cloudfront-viewer-country"] as const;

/** The visitor's country as the trusted edge proxy reported it; null when untrusted or unknown. */
export function countryFromHeaders(headers: Headers, trusted: boolean): string | null {
  if (!trusted) return null;
  for (const name of EDGE_COUNTRY_HEADERS) {
    const country = normaliseCountry(headers.get(name));
    if (country !== null) return country;
  }
  return null;
}

/** IP → country, synchronous; null when the address is not public or not in the database. */
export type CountryLookup = (ip: string) => string | null;

export interface CountryLookupOptions {
  /** An MMDB file whose records carry `country_code` (the ip-location-db format); default: the bundled one. */
  databasePath?: string;
  /** Called once if the database cannot be loaded (e.g. an edge runtime without a file system). */
  onLoadError?: (error: unknown) => void;
}

const BUNDLED_DATABASE = "@ip-location-db/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb";

interface MmdbReader {
  get(ip: string): { country_code?: unknown } | null;
}

function loadReader(databasePath: string | undefined): MmdbReader {
  // Loaded on first use and through Node's module API rather than static imports: the database is
  // ~8 MB, mmdb-lib touches `Buffer` when imported, and neither exists on edge runtimes, where this
  // module must still import cleanly (the lookup then answers null and edge headers do the work).
  const getBuiltin = globalThis.process?.getBuiltinModule;
  if (typeof getBuiltin !== "function") throw new Error("no Node module API in this runtime");
  const { createRequire } = getBuiltin("node:module") as typeof import("node:module");
  const { readFileSync } = getBuiltin("node:fs") as typeof import("node:fs");
  const require = createRequire(import.meta.url);
  const { Reader } = require("mmdb-lib") as typeof import("mmdb-lib");
  const path = databasePath ?? require.resolve(BUNDLED_DATABASE);
  // The records are ip-location-db's `{ country_code }`, not the MaxMind shapes mmdb-lib types.
  return new Reader(readFileSync(path)) as unknown as MmdbReader;
}

/**
 * The offline IP → country fallback, used when no trusted edge header names the country.
 * Data: ip-location-db "geo-whois-asn-country" (geofeeds, RIR whois and ASN data; CC BY 4.0, NRO).
 */
export function createCountryLookup(options: CountryLookupOptions = {}): CountryLookup {
  let reader: MmdbReader | null | undefined;
  return function lookupCountry(ip: string): string | null {
    const canonical = normaliseIp(ip);
    if (canonical === null || !isPublicIp(canonical)) return null;
    if (reader === undefined) {
      try {
        reader = loadReader(options.databasePath);
      } catch (error) {
        reader = null;
        options.onLoadError?.(error);
      }
    }
    if (reader === null) return null;
    const record = reader.get(canonical);
    return typeof record?.country_code === "string" ? normaliseCountry(record.country_code) : null;
  };
}
