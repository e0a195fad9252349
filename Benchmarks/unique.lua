-- wrk script: POST a JSON2Video-shaped webhook of about 1 KiB with a key unique to this thread and request.
-- DUP_PERCENT (environment) makes that share of requests reuse one of 100 keys per thread (duplicates).
local counter = 0
local threadid = 0
local dup = tonumber(os.getenv("DUP_PERCENT") or "0")
local run = os.getenv("RUN_ID") or tostring(os.time())
local pad = string.rep("x", 900)
function setup(thread)
  threadid = threadid + 1
  thread:set("tid", threadid)
end
function init(args)
  math.randomseed(os.time() + (tid or 0))
end
request = function()
  counter = counter + 1
  local key
  if dup > 0 and math.random(100) <= dup then
    key = string.format("d%s-%d-%d", run, tid or 0, math.random(100))
  else
    key = string.format("u%s-%d-%d", run, tid or 0, counter)
  end
  local body = '{"success":true,"movie":{"project":"' .. key .. '","status":"done","pad":"' .. pad .. '"}}'
  return wrk.format("POST", "/json2video/done", {["Content-Type"] = "application/json"}, body)
end
