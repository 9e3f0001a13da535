-- media-stream.lua — wrk: whole-object GETs (sustained streaming); prints
-- the same JSON summary as media-ranges.lua.
--   wrk ... -s media-stream.lua URL
local report = require("report")
done = report.done
