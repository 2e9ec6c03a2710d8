-- unregisterTopic.
-- KEYS[1] the topic's hash, KEYS[2] the index of topics, KEYS[3] the
-- topic's history stream
-- ARGV[1] name, ARGV[2] the topic's channel, ARGV[3] the control channel
-- Subscribers hear which registration ended ("U <registration>").
-- In a cluster KEYS[2] is KEYS[1]: the topic's hash is its own entry of
-- the index.
-- Returns 1, or 0 when the topic does not exist.
-- in a cluster, the text is loaded with SPUBLISH here (store_script.c)
local publish = 'PUBLISH'
local tag = redis.call('HGET', KEYS[1], 'tag')
if not tag then return 0 end
redis.call('DEL', KEYS[1])
if KEYS[3] then redis.call('UNLINK', KEYS[3]) end
if KEYS[2] ~= KEYS[1] then redis.call('HDEL', KEYS[2], ARGV[1]) end
redis.call(publish, ARGV[2], 'U ' .. string.match(tag, '^[^:]*'))
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 1
