-- wrk script: POST Standard Webhooks deliveries signed beforehand (Benchmarks/signatures.py writes SIGNED, a file of
-- "id timestamp signature" lines). The body is the 1 KiB JSON2Video shape of unique.lua with the id as its key;
-- thread n of THREADS sends lines n, n+THREADS, ..., so no id is sent twice until the pool is used up.
local pad = string.rep("x", 900)
local counter = 0
local threadid = 0
function setup(thread)
  threadid = threadid + 1
  thread:set("tid", threadid)
end
function init(args)
  ids, stamps, sigs = {}, {}, {}
  for line in io.lines(os.getenv("SIGNED")) do
    local id, ts, sig = line:match("^(%S+) (%S+) (.+)$")
    ids[#ids + 1] = id; stamps[#stamps + 1] = ts; sigs[#sigs + 1] = sig
  end
  nthreads = tonumber(os.getenv("THREADS") or "1")
end
request = function()
  local i = (counter * nthreads + (tid - 1)) % #ids + 1
  counter = counter + 1
  local body = '{"success":true,"movie":{"project":"' .. ids[i] .. '","status":"done","pad":"' .. pad .. '"}}'
  return wrk.format("POST", "/json2video/done", {["Content-Type"] = "application/json", ["webhook-id"] = ids[i],
    ["webhook-timestamp"] = stamps[i], ["webhook-signature"] = sigs[i]}, body)
end
