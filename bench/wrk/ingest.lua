-- wrk script for the ingest benchmarks: realistic event bodies (~330 bytes each: a user agent, an
-- IP, a URL with UTM, a referrer, three properties) with a distinct event_id per item, so the
-- service's dedup keeps every one and the count in ClickHouse can be checked against the 202s.
-- The SAME script drives B0, B1 and the service, so their ratios compare like with like.
--
--   wrk -t1 -c64 -d10s -s bench/wrk/ingest.lua http://127.0.0.1:PORT -- <event|batch> <items> <key>
--
-- Keep in sync with bench/lib/bodies.ts (the open-loop generator builds the same bodies).

local mode, nitems, key = "event", 100, "none"
local path = "/v1/ingest/event"
local headers
local counter = 0
local prefix = "00000000"
local threads = {}

local uas = {
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
  "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
}
local VISITORS = 5000

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  mode = args[1] or "event"
  nitems = tonumber(args[2] or "100")
  key = args[3] or "none"
  tid = tid or 1
  math.randomseed(os.time() + tid * 7919 + math.floor(os.clock() * 1e6))
  prefix = string.format("%08x", math.random(0, 0x7fffffff))
  path = (mode == "batch") and "/v1/ingest/batch" or "/v1/ingest/event"
  headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key }
end

local function item(typed)
  counter = counter + 1
  local v = math.random(1, VISITORS)
  local sku = math.random(1, 9999)
  return string.format(
    '{%s"event_id":"%s-%04x-4000-8000-%012x","name":"add_to_cart","url":"https://shop.example/products/p-%d?utm_source=newsletter",'
      .. '"referrer":"https://www.google.com/","ip":"%d.%d.%d.%d","user_agent":"%s","properties":{"sku":"p-%d","price":19.99,"qty":%d}}',
    typed and '"type":"event",' or "", prefix, tid % 65536, counter, sku,
    20 + v % 180, (v * 7) % 256, (v * 13) % 256, 1 + v % 250, uas[v % #uas + 1], sku, 1 + v % 3)
end

function request()
  local body
  if mode == "batch" then
    local parts = {}
    for i = 1, nitems do parts[i] = item(true) end
    body = '{"items":[' .. table.concat(parts, ",") .. "]}"
  else
    body = item(false)
  end
  return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"p50":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, latency.mean))
end
