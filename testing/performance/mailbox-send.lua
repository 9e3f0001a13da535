-- mailbox-send.lua — wrk sends one message per request to a mailbox channel
-- picked at random among MB_CHANNELS, named like the keys redis-benchmark
-- makes of "s:__rand_int__" (s:000000000000 …), so omnigate and Redis see
-- the same names and the same body (mailbox.py, the send benchmark).
-- Env: MB_TOKEN (capability with mailbox.write), MB_BODY (the JSON body),
-- MB_CHANNELS. The requests are formatted once, in init(): the loop only
-- picks one.
local token = os.getenv("MB_TOKEN") or ""
local body = os.getenv("MB_BODY") or "{}"
local nchan = tonumber(os.getenv("MB_CHANNELS") or "256")
local reqs = {}

function init(args)
  math.randomseed(2000)  -- the same channel sequence every run
  local hdrs = {["Content-Type"] = "application/json"}
  if token ~= "" then hdrs["Authorization"] = "Bearer " .. token end
  for i = 1, nchan do
    reqs[i] = wrk.format("POST", string.format("/v1/mailbox/s:%012d", i - 1), hdrs, body)
  end
end

request = function()
  return reqs[math.random(nchan)]
end

done = require("report").done
