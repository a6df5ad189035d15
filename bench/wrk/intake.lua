-- wrk script of the intake bench: cycles through PRE-signed webhook bodies, so the load
-- generator does no HMAC work. Usage:
--   wrk -t T -c C -d D -s bench/wrk/intake.lua http://127.0.0.1:PORT -- BODIES_FILE T
-- BODIES_FILE has one body a line, "<X-Hub-Signature-256 value>\t<body>". Thread i of T takes
-- lines i, i+T, i+2T... and pre-formats each request once. A thread that runs out starts over
-- (then wamids repeat): done() reports it as "wrapped" so the bench can reject the run.

local threads = {}
local created = 0

function setup(thread)
  thread:set("tid", created)
  created = created + 1
  table.insert(threads, thread)
end

function init(args)
  local path = args[1]
  local nthreads = tonumber(args[2])
  requests = {}
  local i = 0
  for line in io.lines(path) do
    if i % nthreads == tid then
      local tab = line:find("\t", 1, true)
      local headers = {
        ["Content-Type"] = "application/json",
        ["X-Hub-Signature-256"] = line:sub(1, tab - 1),
      }
      requests[#requests + 1] = wrk.format("POST", "/webhooks/whatsapp", headers, line:sub(tab + 1))
    end
    i = i + 1
  end
  count = #requests
  issued = 0
  wrapped = 0
end

function request()
  issued = issued + 1
  local k = issued % count
  if k == 0 then k = count end
  if issued > count then wrapped = wrapped + 1 end
  return requests[k]
end

function done(summary, latency, requests_)
  -- Statuses other than 2xx/3xx are counted by wrk itself (errors.status): no response()
  -- callback, which would make wrk parse every response's headers in Lua.
  local wrapped_total, issued_total = 0, 0
  for _, t in ipairs(threads) do
    wrapped_total = wrapped_total + (t:get("wrapped") or 0)
    issued_total = issued_total + (t:get("issued") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"issued":%d,"wrapped":%d,' ..
    '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,' ..
    '"errors_timeout":%d,"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes, issued_total, wrapped_total,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
