-- a worker that delivered revision ARGV[2] of epoch ARGV[1] checks that
-- Redis still has it (after its link came back).
-- KEYS[1] the topic's hash
-- ARGV[1] the epoch the worker knows, ARGV[2] the last revision it
-- delivered, ARGV[3] the topic's channel
-- When the epoch is still ARGV[1] and the top revision is below ARGV[2],
-- Redis lost revisions: the topic gets a new epoch, and "E <epoch>
-- <rev> <ts> <value>" on the channel tells every worker.  Only the first
-- worker to see the loss changes the epoch; the others find it changed.
-- Returns {changed (0/1), epoch, top rev, ts, value or nil}; nil when the
-- topic does not exist.
local h = KEYS[1]
-- in a cluster, the text is loaded with SPUBLISH here (store_script.c)
local publish = 'PUBLISH'
local f = redis.call('HMGET', h, 'tag', 'rev', 'epoch', 'ts', 'value')
if not f[1] then return false end
-- a new epoch: the registration id and Redis's clock in microseconds
local function new_epoch()
  local t = redis.call('TIME')
  return string.match(f[1], '^[^:]*') .. '.' .. t[1]
         .. string.format('%06d', tonumber(t[2]))
end
local epoch = f[3] or string.match(f[1], '^[^:]*')
local top, ts = tonumber(f[2]) or 0, tonumber(f[4]) or 0
if epoch ~= ARGV[1] or top >= tonumber(ARGV[2]) then
  return {0, epoch, top, ts, f[5]}
end
epoch = new_epoch()
redis.call('HSET', h, 'epoch', epoch)
redis.call(publish, ARGV[3], 'E ' .. epoch .. ' ' .. top .. ' ' .. ts
           .. ' ' .. (f[5] or 'null'))
return {1, epoch, top, ts, f[5]}
