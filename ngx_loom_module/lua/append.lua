-- publish and sendWithoutSave, with revisions and history: one or more
-- messages of one topic, stored in order (a group commit).
-- KEYS[1] the topic's hash, KEYS[2] its history stream
-- ARGV[1] the topic's channel, ARGV[2] and ARGV[3] the default retention
-- (revisions kept, seconds; 0 = no age limit), ARGV[4] the most history
-- entries one message trims; then five arguments per message, from
-- ARGV[5]: the tag the data was validated with, "1" to store, the
-- delivery, offset (0-based, as the history entry keeps it) and length of
-- the data in the delivery.
-- Each stored message gets the topic's next revision; all of one call
-- get the server's time (ms, never below the topic's previous one).  The
-- value of the last stored message is the topic's value; the stored ones
-- go to the history as one entry: a single message as id "<rev>-0" with
-- fields t, d, o, l; k > 1 of them as id "<last rev>-<k>" with t, then
-- one pair "<offset>:<length>", delivery per message.  The history is
-- trimmed by count and by age once for the call, a bounded amount per
-- message.  For each message, "<seq> <rev> <ts> <epoch> <delivery>" is
-- published; rev and ts are 0 for what is not stored (sendWithoutSave, a
-- topic with storage "memory").
-- The hash's "hf" is a floor: no entry of the stream ends below it, so
-- that what trimming removes is known without reading the stream.
-- Returns one reply per message, in order: {seq, rev, ts};
-- {tag, schema, schema kind} when its tag is not the current one (the
-- caller checks again); {tag, schema, schema kind, "after"} for every
-- message after such a one: not stored either, so that the retries keep
-- the messages' order; nil when the topic does not exist.
local h, s = KEYS[1], KEYS[2]
-- in a cluster, the text is loaded with SPUBLISH here (store_script.c)
local publish = 'PUBLISH'
local k = (#ARGV - 4) / 5
local out = {}
local f = redis.call('HMGET', h, 'tag', 'st', 'hn', 'ha', 'ts', 'epoch',
                    'seq', 'rev', 'hf')
local tag = f[1]
if not tag then
  for i = 1, k do out[i] = false end
  return out
end
-- Numbers are what this script spends its time on: Redis formats a
-- number given to redis.call with "%.17g", Lua one concatenated with
-- "%.14g" (both glibc's slow floating-point path), and tonumber() reads a
-- string twice.  So each number is read once, by arithmetic, and written
-- once, by string.format('%d'), and the strings are what the commands get.
local fmt = string.format
local ch, trim = ARGV[1], ARGV[4] + 0
local memory = f[2] == 'memory'
local epoch = f[6] or string.match(tag, '^[^:]*')
local n = (f[3] or ARGV[2]) + 0
local age = (f[4] or ARGV[3]) + 0
local seq = (f[7] or 0) + 0
local rev = (f[8] or 0) + 0
local ts, tss, sq, rs, last
local stored = 0
local refused, sent
-- the history entry of the call: the fields of a single message, or of
-- a group from its second message on
local one, entry
for i = 1, k do
  local a = 5 + (i - 1) * 5
  if refused or ARGV[a] ~= tag then
    if not refused then
      local c = redis.call('HMGET', h, 'schema', 'sk')
      out[i] = {tag, c[1], c[2] or ''}
      -- the ones after it: refused only for keeping the order
      refused = {tag, c[1], c[2] or '', 'after'}
    else
      out[i] = refused
    end
  else
    local d = ARGV[a + 2]
    seq = seq + 1
    local mrs, ms = '0', '0'
    local got = {seq, 0, 0}
    sq = fmt('%d', seq)
    if ARGV[a + 1] == '1' and not memory then
      if not ts then
        local t = redis.call('TIME')
        ts = t[1] * 1000 + math.floor(t[2] / 1000)
        local last = (f[5] or 0) + 0
        if ts < last then ts = last end
        tss = fmt('%d', ts)
      end
      rev = rev + 1
      rs = fmt('%d', rev)
      mrs, ms = rs, tss
      got[2], got[3] = rev, ts
      stored = stored + 1
      last = a
      if n > 0 then
        if not one then
          one = a
        else
          if stored == 2 then
            entry = {'t', tss, ARGV[one + 3] .. ':' .. ARGV[one + 4],
                     ARGV[one + 2]}
          end
          local g = #entry
          entry[g + 1] = ARGV[a + 3] .. ':' .. ARGV[a + 4]
          entry[g + 2] = d
        end
      end
    end
    redis.call(publish, ch, sq .. ' ' .. mrs .. ' ' .. ms .. ' ' .. epoch
               .. ' ' .. d)
    out[i] = got
    sent = true
  end
end
if stored > 0 then
  local o = ARGV[last + 3] + 1
  local value = string.sub(ARGV[last + 2], o, o + ARGV[last + 4] - 1)
  if n > 0 then
    local first = rev - stored + 1
    local id = rs .. '-' .. (entry and fmt('%d', stored) or '0')
    if not entry then
      entry = {'t', tss, 'd', ARGV[one + 2], 'o', ARGV[one + 3],
               'l', ARGV[one + 4]}
    end
    local floor = f[9] and f[9] + 0
    if not floor then
      -- a topic's first call since it kept a floor: the oldest entry's
      local old = redis.call('XRANGE', s, '-', '+', 'COUNT', 1)[1]
      floor = old and string.match(old[1], '^%d+') + 0 or first
    end
    -- by count, exact: the entries that end below the newest n revisions
    -- go, at most trim per stored message (each ends at its own revision)
    local r
    if floor <= rev - n then
      local min = rev - n + 1
      if min - floor > trim * stored then min = floor + trim * stored end
      r = redis.pcall('XADD', s, 'MINID', fmt('%d', min), id,
                      unpack(entry))
      floor = min
    else
      r = redis.pcall('XADD', s, id, unpack(entry))
    end
    if type(r) == 'table' and r['err'] then
      -- ids at or above rev: history of revisions that Redis lost
      redis.call('UNLINK', s)
      redis.call('XADD', s, id, unpack(entry))
      floor = first
    end
    redis.call('HSET', h, 'seq', sq, 'rev', rs, 'ts', tss, 'value', value,
               'hf', fmt('%d', floor))
    if age > 0 then
      local cut = ts - age * 1000
      for i = 1, 4 * stored do
        local old = redis.call('XRANGE', s, '-', '+', 'COUNT', 1)[1]
        if not old or old[2][2] + 0 >= cut then break end
        redis.call('XDEL', s, old[1])
      end
      redis.call('PEXPIRE', s, fmt('%d', age * 1000))
    else
      redis.call('PERSIST', s)
    end
  else
    redis.call('HSET', h, 'seq', sq, 'rev', rs, 'ts', tss, 'value', value)
    redis.call('UNLINK', s)
  end
elseif sent then
  redis.call('HSET', h, 'seq', sq)
end
return out
