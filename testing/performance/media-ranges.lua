-- media-ranges.lua — wrk: GET 64 KiB byte ranges at random offsets of one object.
-- The offsets come from a seeded generator, so two runs (and two servers) see
-- the same sequence. Headers given with -H (Authorization) are kept.
--   wrk ... -s media-ranges.lua URL -- SIZE [SEED]
local report = require("report")

local size, span = 0, 65536
local base = {}

function init(args)
    size = tonumber(args[1]) or error("usage: -- SIZE [SEED]")
    math.randomseed(tonumber(args[2] or "1"))
    for k, v in pairs(wrk.headers) do
        base[k] = v
    end
end

function request()
    local first = math.random(0, size - span)
    local h = {}
    for k, v in pairs(base) do
        h[k] = v
    end
    h["Range"] = string.format("bytes=%d-%d", first, first + span - 1)
    return wrk.format("GET", nil, h)
end

done = report.done
delay = require("pace").delay
