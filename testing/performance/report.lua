-- report.lua — the JSON line every wrk script here prints (perflib.wrk reads it):
-- requests, req/s, MB/s (10^6 bytes), latency percentiles in ms, errors.
local M = {}

function M.done(summary, latency, requests)
    local secs = summary.duration / 1e6
    local e = summary.errors
    io.write(string.format(
        '{"requests":%d,"rps":%.1f,"mbps":%.1f,"p50_ms":%.3f,"p95_ms":%.3f,"p99_ms":%.3f,' ..
        '"non2xx":%d,"socket_errors":%d}\n',
        summary.requests, summary.requests / secs, summary.bytes / secs / 1e6,
        latency:percentile(50) / 1000, latency:percentile(95) / 1000,
        latency:percentile(99) / 1000, e.status, e.connect + e.read + e.write + e.timeout))
end

return M
