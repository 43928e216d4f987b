-- Appends one group of events atomically. KEYS, ARGV and the reply: APPEND_LUA in stream_writer.rs.
local stream = KEYS[1]
local again = ARGV[8] == '1'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_us = t[1] .. string.format('%06d', tonumber(t[2]))
if again then
  local done = redis.call('GET', KEYS[2])
  if done then return {now_us, cjson.decode(done)} end
end
local trim = false
if ARGV[1] == 'MINID' then
  local min = now - tonumber(ARGV[2])
  if min > 0 then trim = {'MINID', '~', string.format('%d', min)} end
else
  trim = {'MAXLEN', '~', ARGV[2]}
end
local latest = now + tonumber(ARGV[6])
local earliest = now - tonumber(ARGV[7])
-- The proposals' times lie between ARGV[9] and ARGV[10]: when both are within the bounds, no
-- entry's needs checking.
local lo, hi = tonumber(ARGV[9]), tonumber(ARGV[10])
local all_in = lo ~= nil and lo >= earliest and hi <= latest
local function in_bounds(proposed)
  if all_in then return true end
  local ms = tonumber(string.match(proposed, '^(%d+)%-%d+$'))
  return ms ~= nil and ms <= latest and ms >= earliest
end
local out = {}
local assigned = false
local n = (#ARGV - 10) / 4
for i = 1, n do
  local at = 7 + 4 * i
  local dedup = ARGV[at]
  local proposed = ARGV[at + 1]
  local json = ARGV[at + 2]
  local trace = ARGV[at + 3]
  local check = again
  local key = false
  if dedup ~= '' then
    if string.byte(dedup, 1) == 63 then
      dedup = string.sub(dedup, 2)
      check = true
    end
    key = KEYS[tonumber(dedup)]
  end
  local id = false
  if key then id = redis.call('GET', key) end
  if not id and check and proposed ~= '' then
    local e = redis.call('XRANGE', stream, proposed, proposed)
    local needle = string.match(json, '^{"id":"[^"]*"')
    if needle and e[1] and e[1][2][1] == 'event' and string.sub(e[1][2][2], 1, #needle) == needle then
      id = proposed
    end
  end
  if not id then
    local last = i == n and trim
    if trace == '' and not last then
      -- The usual entry: one field pair, no trim; no argument table to build.
      if proposed ~= '' and in_bounds(proposed) then
        local r = redis.pcall('XADD', stream, proposed, 'event', json)
        if type(r) == 'string' then id = r end
      end
      if not id then
        id = redis.call('XADD', stream, '*', 'event', json)
        assigned = true
      end
    else
      local args = {stream}
      if last then
        args = {stream, trim[1], trim[2], trim[3]}
        trim = false
      end
      local a = #args + 1
      args[a + 1] = 'event'
      args[a + 2] = json
      if trace ~= '' then
        local nl = string.find(trace, '\n', 1, true)
        if nl then
          args[a + 3] = 'traceparent'
          args[a + 4] = string.sub(trace, 1, nl - 1)
          args[a + 5] = 'tracestate'
          args[a + 6] = string.sub(trace, nl + 1)
        else
          args[a + 3] = 'traceparent'
          args[a + 4] = trace
        end
      end
      if proposed ~= '' and in_bounds(proposed) then
        args[a] = proposed
        local r = redis.pcall('XADD', unpack(args))
        if type(r) == 'string' then id = r end
      end
      if not id then
        args[a] = '*'
        id = redis.call('XADD', unpack(args))
        assigned = true
      end
    end
    if key then redis.call('SET', key, id, 'PX', ARGV[3]) end
  end
  out[i] = id
end
if trim then redis.call('XTRIM', stream, trim[1], trim[2], trim[3]) end
if assigned then redis.call('SET', KEYS[2], cjson.encode(out), 'PX', ARGV[5]) end
return {now_us, out}
