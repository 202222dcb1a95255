-- wrk 4.1 script for `autoid-bench run` (bench/src/wrk.rs): every request is taken, as is,
-- from a pool of complete HTTP/1.1 requests made by the bench (each ends with an empty line).
--
--   wrk -t T -c C -d D -s pool.lua http://127.0.0.1:PORT/ -- <pool prefix> <once|cycle>
--
-- Thread i reads <prefix>.<i>.http. `once`: each request is sent at most once (autoid proofs are
-- single-use); when a thread's pool runs out it stops (the run is then invalid, and reported as
-- such). `cycle`: the pool is sent round and round (the JWTs of the jwt_authn arm).
-- done() prints one line, `autoid-wrk: result {json}`, for the bench to parse.

local threads = {}

function setup(thread)
   thread:set("id", #threads)
   threads[#threads + 1] = thread
end

-- Never completed (no empty line): what a thread whose pool ran out sends while it stops, so
-- that Envoy never answers (and never counts) a request past the pool.
local hold = "GET / HTTP/1.1\r\nhost: pool-exhausted\r\n"

function init(args)
   local prefix, mode = args[1], args[2]
   local path = prefix .. "." .. id .. ".http"
   local f = assert(io.open(path, "rb"))
   local data = f:read("*a")
   f:close()
   pool = {}
   local pos = 1
   while true do
      local e = string.find(data, "\r\n\r\n", pos, true)
      if not e then
         break
      end
      pool[#pool + 1] = string.sub(data, pos, e + 3)
      pos = e + 4
   end
   data = nil
   n = #pool
   cycle = mode == "cycle"
   taken = 0
   exhausted = false
   assert(n > 0, path .. ": no requests")
   io.stderr:write("autoid-wrk: thread " .. id .. " ready, " .. n .. " requests\n")
end

function request()
   if taken >= n then
      if not cycle then
         if not exhausted then
            exhausted = true
            wrk.thread:stop()
         end
         return hold
      end
      taken = 0
   end
   taken = taken + 1
   return pool[taken]
end

function done(summary, latency, requests)
   local taken_all, exhausted_threads = 0, 0
   for _, t in ipairs(threads) do
      taken_all = taken_all + t:get("taken")
      if t:get("exhausted") then
         exhausted_threads = exhausted_threads + 1
      end
   end
   local e = summary.errors
   io.write(string.format(
      'autoid-wrk: result {"duration_us":%d,"requests":%d,"bytes":%d,'
         .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
         .. '"latency_us":{"p50":%.1f,"p99":%.1f,"p999":%.1f,"mean":%.1f,"max":%.1f},'
         .. '"taken":%d,"exhausted_threads":%d}\n',
      summary.duration, summary.requests, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
      latency.mean, latency.max,
      taken_all, exhausted_threads))
end
