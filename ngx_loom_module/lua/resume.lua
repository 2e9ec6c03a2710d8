-- subscribe with "since": can the revisions after (epoch, rev) be
-- delivered from the history?
-- KEYS[1] the topic's hash, KEYS[2] its history stream
-- ARGV[1] the client's epoch, ARGV[2] its revision, ARGV[3] the most
-- entries to return, ARGV[4] and ARGV[5] the default retention, ARGV[6]
-- the topic's channel
-- Recovered when the epoch is the topic's and every revision after rev
-- is in the history (and not older than maxAge).  A client that has seen
-- a revision of this epoch above the top one proves that Redis lost
-- revisions: the topic gets a new epoch, and "E <epoch> <rev> <ts>
-- <value>" on the channel tells every worker.
-- Returns {recovered (0/1), epoch, top rev, ts, value or nil, entries}
-- with one entry per revision, as XRANGE gives a one-message entry, from
-- rev + 1 on (at most ARGV[3]: the caller reads the rest as history);
-- nil when the topic does not exist.  Revisions older than the newest N
-- are gone even while a group's entry still holds them.
local h, s = KEYS[1], KEYS[2]
-- in a cluster, the text is loaded with SPUBLISH here (store_script.c)
local publish = 'PUBLISH'
local f = redis.call('HMGET', h, 'tag', 'rev', 'epoch', 'ts', 'value',
                     'st', 'hn', 'ha')
if not f[1] then return false end
-- a new epoch: the registration id and Redis's clock in microseconds
local function new_epoch()
  local t = redis.call('TIME')
  return string.match(f[1], '^[^:]*') .. '.' .. t[1]
         .. string.format('%06d', tonumber(t[2]))
end
local epoch = f[3] or string.match(f[1], '^[^:]*')
local top, ts = tonumber(f[2]) or 0, tonumber(f[4]) or 0
local rev = tonumber(ARGV[2])
if ARGV[1] ~= epoch then
  return {0, epoch, top, ts, f[5], {}}
end
if rev > top then
  epoch = new_epoch()
  redis.call('HSET', h, 'epoch', epoch)
  redis.call(publish, ARGV[6], 'E ' .. epoch .. ' ' .. top .. ' ' .. ts
             .. ' ' .. (f[5] or 'null'))
  return {0, epoch, top, ts, f[5], {}}
end
if rev == top then
  return {1, epoch, top, ts, f[5], {}}
end
local n = tonumber(f[7] or ARGV[4])
if f[6] == 'memory' or n == 0 then
  return {0, epoch, top, ts, f[5], {}}
end
local count = tonumber(ARGV[3])
-- the entries that hold rev + 1 to rev + count, and no more: the last
-- one is the first that ends at or after rev + count
local stop = redis.call('XRANGE', s, math.min(top, rev + count) .. '-0',
                        '+', 'COUNT', 1)[1]
local e = {}
if stop then
  e = redis.call('XRANGE', s, (rev + 1) .. '-0', stop[1], 'COUNT', count)
end
local age = tonumber(f[8] or ARGV[5])
-- the revisions of an entry: "<rev>-0" holds one, "<last>-<k>" (a
-- group, see append.lua) k
local function span(x)
  local hi, k = string.match(x[1], '^(%d+)-(%d+)$')
  hi, k = tonumber(hi), tonumber(k)
  return hi - math.max(k, 1) + 1, hi, k
end
-- the first entry must hold rev + 1
if not e[1] or span(e[1]) > rev + 1 or rev + 1 < top - n + 1
   or (age > 0 and tonumber(e[1][2][2]) < ts - age * 1000)
then
  return {0, epoch, top, ts, f[5], {}}
end
-- one entry per revision from rev + 1 to rev + count, as XRANGE gives a
-- one-message entry
local out = {}
for i = 1, #e do
  local x = e[i]
  local lo, hi, k = span(x)
  if k == 0 then
    if hi > rev and hi <= rev + count then out[#out + 1] = x end
  else
    local fl = x[2]
    for r = math.max(lo, rev + 1), math.min(hi, rev + count) do
      local j = 2 * (r - lo) + 3
      local o, l = string.match(fl[j], '^(%d+):(%d+)$')
      out[#out + 1] = {r .. '-0', {'t', fl[2], 'd', fl[j + 1], 'o', o,
                                   'l', l}}
    end
  end
end
return {1, epoch, top, ts, f[5], out}
