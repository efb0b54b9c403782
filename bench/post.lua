-- wrk script: POST an AdmissionReview body read from a file; answers that are not HTTP 200 with
-- "allowed":true count as errors. Arguments: <body file> [unique <prefix>]
-- "unique" puts a fresh service name (<prefix>t<thread>x<n>) in place of SERVICE_PLACEHOLDER for
-- every request, so that each admission needs a PVC of its own; the prefix differs per run.
local body, unique, prefix, static
local counter = 0
local threads = {}
errors = 0 -- a global, so that done() can read each thread's count

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_id", #threads)
end

function init(args)
  local f = assert(io.open(args[1], "rb"))
  body = f:read("*a")
  f:close()
  unique = args[2] == "unique"
  prefix = args[3] or "b"
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.body = body
  static = wrk.format()
end

function request()
  if unique then
    counter = counter + 1
    local service = prefix .. "t" .. thread_id .. "x" .. counter
    return wrk.format(nil, nil, nil, (body:gsub("SERVICE_PLACEHOLDER", service)))
  end
  return static
end

function response(status, headers, resp)
  if status ~= 200 or not resp:find('"allowed":true', 1, true) then
    errors = errors + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do
    total = total + (t:get("errors") or 0)
  end
  io.write(string.format("ANSWER_ERRORS %d\n", total))
end
