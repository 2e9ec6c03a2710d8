-- updateSchema.
-- KEYS[1] the topic's hash, KEYS[2] the index of topics
-- ARGV[1] name, ARGV[2] schema (JSON), ARGV[3] the control channel
-- The tag becomes "<registration>:<new version>", so that publishes
-- validated against the old schema are sent back to be checked again.
-- Only the current schema is kept (a field "s:<version>" that older
-- releases wrote for every version is removed as the version passes).
-- Returns the new version, or nil when the topic does not exist.
local tag = redis.call('HGET', KEYS[1], 'tag')
if not tag then return false end
local v = redis.call('HINCRBY', KEYS[1], 'sv', 1)
tag = string.match(tag, '^[^:]*') .. ':' .. v
redis.call('HSET', KEYS[1], 'tag', tag, 'schema', ARGV[2])
redis.call('HDEL', KEYS[1], 's:' .. (v - 1), 's:' .. v)
redis.call('HSET', KEYS[2], ARGV[1],
           '{"version":' .. v .. ',"schema":' .. ARGV[2] .. '}')
redis.call('PUBLISH', ARGV[3], ARGV[1])
return v
