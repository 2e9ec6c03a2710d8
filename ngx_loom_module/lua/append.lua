-- publish and sendWithoutSave, with revisions and history.
-- KEYS[1] the topic's hash, KEYS[2] its history stream
-- ARGV[1] the tag the data was validated with, ARGV[2] "1" to store,
-- ARGV[3] the delivery, ARGV[4] and ARGV[5] offset (1-based) and length
-- of the data in the delivery, ARGV[6] the topic's channel,
-- ARGV[7] and ARGV[8] the default retention (revisions kept, seconds;
-- 0 = no age limit), ARGV[9] the most history entries one call trims.
-- A stored publish gets the topic's next revision and the server's time
-- (ms, never below the topic's previous one), its value is stored, it is
-- appended to the history (stream id "<rev>-0") and the history is
-- trimmed by count and by age, a bounded amount per call.  Then
-- "<seq> <rev> <ts> <epoch> <delivery>" is published; rev and ts are 0
-- for what is not stored (sendWithoutSave, a topic with storage
-- "memory").
-- Returns {seq, rev, ts}; {tag, schema} when the tag is not the current
-- one (the caller checks again); nil when the topic does not exist.
local h, s = KEYS[1], KEYS[2]
-- in a cluster, the text is loaded with SPUBLISH here (store_script.c)
local publish = 'PUBLISH'
local f = redis.call('HMGET', h, 'tag', 'st', 'hn', 'ha', 'ts', 'epoch',
                    'seq', 'rev')
local tag = f[1]
if not tag then return false end
if tag ~= ARGV[1] then
  return {tag, redis.call('HGET', h, 'schema')}
end
-- the counters come with the fields read above: one HSET writes them
local seq = (tonumber(f[7]) or 0) + 1
local rev, ts = 0, 0
if ARGV[2] ~= '1' or f[2] == 'memory' then
  redis.call('HSET', h, 'seq', seq)
else
  local t = redis.call('TIME')
  ts = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local last = tonumber(f[5]) or 0
  if ts < last then ts = last end
  rev = (tonumber(f[8]) or 0) + 1
  local o = tonumber(ARGV[4])
  redis.call('HSET', h, 'seq', seq, 'rev', rev, 'ts', ts, 'value',
             string.sub(ARGV[3], o, o + tonumber(ARGV[5]) - 1))
  local n = tonumber(f[3] or ARGV[7])
  local age = tonumber(f[4] or ARGV[8])
  if n > 0 then
    local id = rev .. '-0'
    local e = {'XADD', s, id, 't', ts, 'd', ARGV[3], 'o', o - 1,
               'l', ARGV[5]}
    local r = redis.pcall(unpack(e))
    if type(r) == 'table' and r['err'] then
      -- ids at or above rev: history of revisions that Redis lost
      redis.call('UNLINK', s)
      redis.call(unpack(e))
    end
    local k = tonumber(ARGV[9])
    local len = redis.call('XLEN', s)
    if len > n then
      redis.call('XTRIM', s, 'MINID',
                 math.min(rev - n + 1, rev - len + 1 + k))
    end
    if age > 0 then
      local cut = ts - age * 1000
      for i = 1, 4 do
        local old = redis.call('XRANGE', s, '-', '+', 'COUNT', 1)[1]
        if not old or tonumber(old[2][2]) >= cut then break end
        redis.call('XDEL', s, old[1])
      end
      redis.call('PEXPIRE', s, age * 1000)
    else
      redis.call('PERSIST', s)
    end
  else
    redis.call('UNLINK', s)
  end
end
redis.call(publish, ARGV[6], seq .. ' ' .. rev .. ' ' .. ts .. ' '
           .. (f[6] or string.match(tag, '^[^:]*')) .. ' ' .. ARGV[3])
return {seq, rev, ts}
