-- updateSchema.
-- KEYS[1] the topic's hash, KEYS[2] the index of topics, KEYS[3] the
-- topic's history stream
-- ARGV[1] name, ARGV[2] schema (JSON), ARGV[3] the control channel,
-- ARGV[4] and ARGV[5] the retention (revisions kept, seconds): "" leaves
-- a setting as it is, "-" goes back to the default; ARGV[6] the storage
-- asked for ("" when not asked for), which cannot change
-- The tag becomes "<registration>:<new version>", so that publishes
-- validated against the old schema are sent back to be checked again.
-- Only the current schema is kept (a field "s:<version>" that older
-- releases wrote for every version is removed as the version passes).
-- A smaller history is trimmed by the publishes that follow, a bounded
-- amount each; no history at all drops the stream at once.
-- In a cluster KEYS[2] is KEYS[1]: the topic's hash is its own entry of
-- the index.
-- Returns the new version; -1 when the storage asked for is not the
-- topic's (nothing changes); nil when the topic does not exist.
local f = redis.call('HMGET', KEYS[1], 'tag', 'st')
local tag = f[1]
if not tag then return false end
if ARGV[6] and ARGV[6] ~= '' and ARGV[6] ~= (f[2] or 'redis') then
  return -1
end
local v = redis.call('HINCRBY', KEYS[1], 'sv', 1)
tag = string.match(tag, '^[^:]*') .. ':' .. v
redis.call('HSET', KEYS[1], 'tag', tag, 'schema', ARGV[2])
redis.call('HDEL', KEYS[1], 's:' .. (v - 1), 's:' .. v)
local set = {hn = ARGV[4], ha = ARGV[5]}
for k, a in pairs(set) do
  if a == '-' then redis.call('HDEL', KEYS[1], k)
  elseif a and a ~= '' then redis.call('HSET', KEYS[1], k, a) end
end
if ARGV[4] == '0' and KEYS[3] then redis.call('UNLINK', KEYS[3]) end
if KEYS[2] ~= KEYS[1] then
  redis.call('HSET', KEYS[2], ARGV[1],
             '{"version":' .. v .. ',"schema":' .. ARGV[2] .. '}')
end
redis.call('PUBLISH', ARGV[3], ARGV[1])
return v
