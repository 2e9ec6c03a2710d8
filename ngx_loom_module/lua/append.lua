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
-- Returns {seq, rev, ts}; {tag, schema, schema kind} when the tag is not
-- the current one (the caller checks again); nil when the topic does not
-- exist.
local h, s = KEYS[1], KEYS[2]
-- in a cluster, the text is loaded with SPUBLISH here (store_script.c)
local publish = 'PUBLISH'
local f = redis.call('HMGET', h, 'tag', 'st', 'hn', 'ha', 'ts', 'epoch',
                    'seq', 'rev')
local tag = f[1]
if not tag then return false end
if tag ~= ARGV[1] then
  local c = redis.call('HMGET', h, 'schema', 'sk')
  return {tag, c[1], c[2] or ''}
end
-- Numbers are what this script spends its time on: Redis formats a
-- number given to redis.call with "%.17g", Lua one concatenated with
-- "%.14g" (both glibc's slow floating-point path), and tonumber() reads a
-- string twice.  So each number is read once, by arithmetic, and written
-- once, by string.format('%d'), and the strings are what the commands get.
local fmt = string.format
-- the counters come with the fields read above: one HSET writes them
local seq = (f[7] or 0) + 1
local sq, rs, tss = fmt('%d', seq), '0', '0'
local rev, ts = 0, 0
if ARGV[2] ~= '1' or f[2] == 'memory' then
  redis.call('HSET', h, 'seq', sq)
else
  local t = redis.call('TIME')
  ts = t[1] * 1000 + math.floor(t[2] / 1000)
  local last = (f[5] or 0) + 0
  if ts < last then ts = last end
  rev = (f[8] or 0) + 1
  rs, tss = fmt('%d', rev), fmt('%d', ts)
  local o = ARGV[4] + 0
  redis.call('HSET', h, 'seq', sq, 'rev', rs, 'ts', tss, 'value',
             string.sub(ARGV[3], o, o + ARGV[5] - 1))
  local n = (f[3] or ARGV[7]) + 0
  local age = (f[4] or ARGV[8]) + 0
  if n > 0 then
    local id, off = rs .. '-0', fmt('%d', o - 1)
    -- the trimming rides on the XADD (MINID, exact): one command less
    local len = redis.call('XLEN', s) + 1
    local r
    if len > n then
      local min = rev - n + 1
      if len - n > ARGV[9] + 0 then min = rev - len + 1 + ARGV[9] end
      r = redis.pcall('XADD', s, 'MINID', fmt('%d', min), id, 't', tss,
                      'd', ARGV[3], 'o', off, 'l', ARGV[5])
    else
      r = redis.pcall('XADD', s, id, 't', tss, 'd', ARGV[3], 'o', off,
                      'l', ARGV[5])
    end
    if type(r) == 'table' and r['err'] then
      -- ids at or above rev: history of revisions that Redis lost
      redis.call('UNLINK', s)
      redis.call('XADD', s, id, 't', tss, 'd', ARGV[3], 'o', off,
                 'l', ARGV[5])
    end
    if age > 0 then
      local cut = ts - age * 1000
      for i = 1, 4 do
        local old = redis.call('XRANGE', s, '-', '+', 'COUNT', 1)[1]
        if not old or old[2][2] + 0 >= cut then break end
        redis.call('XDEL', s, old[1])
      end
      redis.call('PEXPIRE', s, fmt('%d', age * 1000))
    else
      redis.call('PERSIST', s)
    end
  else
    redis.call('UNLINK', s)
  end
end
redis.call(publish, ARGV[6], sq .. ' ' .. rs .. ' ' .. tss .. ' '
           .. (f[6] or string.match(tag, '^[^:]*')) .. ' ' .. ARGV[3])
return {seq, rev, ts}
