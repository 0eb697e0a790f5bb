-- wrk script: POST pre-signed Plane deliveries read from a file.
--
-- Usage: wrk -s rotate_deliveries.lua URL -- FILE THREADS
-- FILE has one "delivery_id<TAB>signature<TAB>body" line per delivery
-- (bench/deliveries.py writes it). Thread k of THREADS takes lines k, k+THREADS,
-- k+2*THREADS, ..., so no two threads send the same body. A thread that reaches
-- the end of its share starts again from its first line and counts a wrap.
-- done() prints one line, "WRK_RESULT " followed by JSON, for bench/wrk.py.

local threads = {}
local thread_count = 0

function setup(thread)
   thread:set("thread_index", thread_count)
   thread_count = thread_count + 1
   table.insert(threads, thread)
end

function init(args)
   local path = args[1]
   local total_threads = tonumber(args[2])
   prepared = {}
   position = 0
   wraps = 0
   local line_number = 0
   for line in io.lines(path) do
      if line_number % total_threads == thread_index then
         local delivery_id, signature, body = line:match("^([^\t]+)\t([^\t]+)\t(.*)$")
         prepared[#prepared + 1] = wrk.format("POST", nil, {
            ["Content-Type"] = "application/json",
            ["User-Agent"] = "Autopilot",
            ["X-Plane-Delivery"] = delivery_id,
            ["X-Plane-Event"] = "issue",
            ["X-Plane-Signature"] = signature,
         }, body)
      end
      line_number = line_number + 1
   end
   if #prepared == 0 then
      error("no deliveries for thread " .. thread_index .. " in " .. path)
   end
end

function request()
   position = position + 1
   if position > #prepared then
      position = 1
      wraps = wraps + 1
   end
   return prepared[position]
end

function done(summary, latency, requests)
   local total_wraps = 0
   for _, thread in ipairs(threads) do
      total_wraps = total_wraps + thread:get("wraps")
   end
   local errors = summary.errors
   io.write(string.format(
      'WRK_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
         .. '"max_us": %d, "connect_errors": %d, "read_errors": %d, '
         .. '"write_errors": %d, "status_errors": %d, "timeouts": %d, "wraps": %d}\n',
      summary.requests, summary.duration, latency:percentile(50),
      latency:percentile(99), latency.max, errors.connect, errors.read,
      errors.write, errors.status, errors.timeout, total_wraps))
end
