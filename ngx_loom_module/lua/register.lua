-- registerTopic.
-- KEYS[1] the topic's hash, KEYS[2] the index of topics
-- ARGV[1] name, ARGV[2] schema (JSON), ARGV[3] a new registration id
-- Returns {1} when registered, {0, schema} when the topic exists.
local s = redis.call('HGET', KEYS[1], 'schema')
if s then return {0, s} end
redis.call('HSET', KEYS[1], 'sv', 0, 'tag', ARGV[3] .. ':0',
           'schema', ARGV[2], 'seq', 0)
redis.call('HSET', KEYS[2], ARGV[1],
           '{"version":0,"schema":' .. ARGV[2] .. '}')
return {1}
