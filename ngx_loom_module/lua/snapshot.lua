-- the topic's position and latest value, for get and subscribe.
-- KEYS[1] the topic's hash
-- ARGV[1] "1" for the registration and storage too (the shared read of
-- subscribes with snapshot, ngx_http_loom_snapshot.c)
-- The epoch of a topic registered before epochs existed is its
-- registration id.
-- Returns {rev, epoch, ts, value (nil when none)}, with ARGV[1] "1"
-- {rev, epoch, ts, value, registration, storage (nil when not
-- "memory")}; nil when the topic does not exist.
local f = redis.call('HMGET', KEYS[1], 'tag', 'rev', 'epoch', 'ts',
                     'value', 'st')
if not f[1] then return false end
local reg = string.match(f[1], '^[^:]*')
if ARGV[1] == '1' then
  return {tonumber(f[2]) or 0, f[3] or reg, tonumber(f[4]) or 0, f[5],
          reg, f[6]}
end
return {tonumber(f[2]) or 0, f[3] or reg, tonumber(f[4]) or 0, f[5]}
