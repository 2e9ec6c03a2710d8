-- publish and sendWithoutSave.
-- KEYS[1] the topic's hash
-- ARGV[1] the tag the data was validated with, ARGV[2] "1" to store,
-- ARGV[3] the delivery, ARGV[4] and ARGV[5] offset (1-based) and length
-- of the data in the delivery, ARGV[6] the topic's channel
-- Returns the delivery's sequence number; {tag, schema} when the tag is
-- not the current one (the caller checks again); nil when the topic does
-- not exist.
local tag = redis.call('HGET', KEYS[1], 'tag')
if not tag then return false end
if tag ~= ARGV[1] then
  return {tag, redis.call('HGET', KEYS[1], 'schema')}
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
if ARGV[2] == '1' then
  local o = tonumber(ARGV[4])
  redis.call('HSET', KEYS[1], 'value',
             string.sub(ARGV[3], o, o + tonumber(ARGV[5]) - 1))
end
redis.call('PUBLISH', ARGV[6], seq .. ' ' .. ARGV[3])
return seq
