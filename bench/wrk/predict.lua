-- wrk script for bench/serve-wrk.sh: every request is one single-image PNG prediction with the API key.
-- The key and the PNG's path come from the environment (SECUREMNIST_KEY, SECUREMNIST_PNG).
local f = assert(io.open(os.getenv("SECUREMNIST_PNG"), "rb"))
local png = f:read("*a")
f:close()
wrk.method = "POST"
wrk.path = "/v1/predict"
wrk.body = png
wrk.headers["Content-Type"] = "image/png"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("SECUREMNIST_KEY")

local statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  -- wrk's own table counts every answer; this line says how many were 200, so refusals are not mistaken for throughput.
  io.write(string.format("non-2xx/3xx responses: %d\n", summary.errors.status))
end
