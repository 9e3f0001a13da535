-- pace.lua — optional pacing for the wrk scripts here: with PACE_MS (env) set,
-- each connection waits on average PACE_MS milliseconds before every request
-- (uniform in [PACE_MS/2, 3*PACE_MS/2], so connections do not march in step).
-- N connections then send about N * 1000 / (PACE_MS + latency) requests per
-- second: a steady rate below capacity (soak.py). Unset: no delay() hook, and
-- wrk runs closed-loop as fast as the server answers.
--   delay = require("pace").delay
local M = {}
local ms = tonumber(os.getenv("PACE_MS") or "")

if ms and ms > 0 then
    function M.delay()
        return math.floor(ms * (0.5 + math.random()) + 0.5)
    end
end

return M
