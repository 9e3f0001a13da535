-- Hydration mix for wrk: ~80 % composed views (users and articles), ~20 %
-- feeds with a mailbox peek joined with storage objects. Names come from the
-- demo data set (src/demo/demo.c). Seeded, so runs are comparable.
-- TOKEN (env) is sent as the capability (none when empty); MIX=healthz sends
-- /healthz only, MIX=views sends only composed views.
local token = os.getenv("TOKEN") or ""
local mix = os.getenv("MIX") or "hydration"
local hdrs = {}
if token ~= "" then hdrs["Authorization"] = "Bearer " .. token end

local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

function init(args)
  math.randomseed(1000 + (id or 0))
end

request = function()
  if mix == "healthz" then
    return wrk.format("GET", "/healthz", hdrs)
  end
  local r = math.random(100)
  if mix == "views" then r = math.random(80) end
  local path
  if r <= 40 then
    path = string.format("/v1/view/user-%03d", math.random(0, 199))
  elseif r <= 80 then
    path = string.format("/v1/view/article-%03d", math.random(0, 99))
  else
    path = string.format("/v1/feed/user-%03d?limit=3", math.random(0, 199))
  end
  return wrk.format("GET", path, hdrs)
end

done = function(summary, latency, requests)
  local errs = summary.errors.status + summary.errors.connect + summary.errors.read
             + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    '{"mix":"%s","requests":%d,"rps":%.1f,"p50_ms":%.2f,"p95_ms":%.2f,"p99_ms":%.2f,"errors":%d,"non2xx":%d}\n',
    mix, summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    errs, summary.errors.status))
end
