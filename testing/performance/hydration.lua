-- Hydration mix for wrk: ~80 % composed views (users and articles), ~20 %
-- feeds with a mailbox peek joined with storage objects. Names come from the
-- demo data set (src/demo/demo.c). Seeded, so runs are comparable.
-- TOKEN (env) is sent as the capability (none when empty); MIX=healthz sends
-- /healthz only, MIX=views sends only composed views. PACE_MS: see pace.lua.
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

done = require("report").done
delay = require("pace").delay
