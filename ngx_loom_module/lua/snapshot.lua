-- the topic's position and latest value, for get and subscribe.
-- KEYS[1] the topic's hash
-- The epoch of a topic registered before epochs existed is its
-- registration id.
-- Returns {rev, epoch, ts, value (nil when none)}; nil when the topic
-- does not exist.
local f = redis.call('HMGET', KEYS[1], 'tag', 'rev', 'epoch', 'ts',
                     'value')
if not f[1] then return false end
return {tonumber(f[2]) or 0, f[3] or string.match(f[1], '^[^:]*'),
        tonumber(f[4]) or 0, f[5]}
