-- updateSchema.
-- KEYS[1] the topic's hash, KEYS[2] the index of topics, KEYS[3] the
-- topic's history stream
-- ARGV[1] name, ARGV[2] schema (JSON), ARGV[3] the control channel,
-- ARGV[4] and ARGV[5] the retention (revisions kept, seconds): "" leaves
-- a setting as it is, "-" goes back to the default; ARGV[6] the storage
-- asked for ("" when not asked for), which cannot change; ARGV[7] the
-- schema version the change was checked against ("" for no check),
-- ARGV[8] the schema kind ("" key-set, "json-schema", "json-schema
-- format"), ARGV[9] the compatibility mode ("" or "none": none),
-- ARGV[10] the schema versions to keep (at least 1; "" for 1); the index
-- entry names the kind and mode after the schema unless they are a
-- key-set schema and none
-- The tag becomes "<registration>:<new version>", so that publishes
-- validated against the old schema are sent back to be checked again.
-- The current schema is "schema" (its kind "sk"); the older versions
-- kept are "s:<version>" (kind "k:<version>") from "vl" up.  A topic
-- without "vl" keeps only its current version (as before versions were
-- kept, when a field "s:<version>" of the current version was written
-- too: it is overwritten or removed here).
-- A smaller history is trimmed by the publishes that follow, a bounded
-- amount each; no history at all drops the stream at once.
-- In a cluster KEYS[2] is KEYS[1]: the topic's hash is its own entry of
-- the index.
-- Returns the new version; -1 when the storage asked for is not the
-- topic's, -2 when the version is no longer ARGV[7] (nothing changes);
-- nil when the topic does not exist.
local h = KEYS[1]
local f = redis.call('HMGET', h, 'tag', 'st', 'sv', 'schema', 'sk', 'vl')
local tag = f[1]
if not tag then return false end
if ARGV[6] and ARGV[6] ~= '' and ARGV[6] ~= (f[2] or 'redis') then
  return -1
end
local old = tonumber(f[3]) or 0
if ARGV[7] and ARGV[7] ~= '' and tonumber(ARGV[7]) ~= old then
  return -2
end
local v = redis.call('HINCRBY', h, 'sv', 1)
tag = string.match(tag, '^[^:]*') .. ':' .. v
redis.call('HSET', h, 'tag', tag, 'schema', ARGV[2])
-- the version that passes is kept, then the oldest beyond the bound go
redis.call('HDEL', h, 's:' .. v, 'k:' .. v, 'k:' .. old)
redis.call('HSET', h, 's:' .. old, f[4])
if f[5] then redis.call('HSET', h, 'k:' .. old, f[5]) end
local keep = math.max(tonumber(ARGV[10] or '') or 1, 1)
local low = tonumber(f[6]) or old
while v - low + 1 > keep do
  redis.call('HDEL', h, 's:' .. low, 'k:' .. low)
  low = low + 1
end
if low < v then redis.call('HSET', h, 'vl', low)
else redis.call('HDEL', h, 'vl') end
local set = {hn = ARGV[4], ha = ARGV[5]}
for k, a in pairs(set) do
  if a == '-' then redis.call('HDEL', h, k)
  elseif a and a ~= '' then redis.call('HSET', h, k, a) end
end
local extra = ''
if ARGV[8] and ARGV[8] ~= '' then
  redis.call('HSET', h, 'sk', ARGV[8])
  extra = ',"schemaType":"json-schema"'
else redis.call('HDEL', h, 'sk') end
if ARGV[9] and ARGV[9] ~= '' and ARGV[9] ~= 'none' then
  redis.call('HSET', h, 'cm', ARGV[9])
  extra = extra .. ',"compatibility":"' .. ARGV[9] .. '"'
else redis.call('HDEL', h, 'cm') end
if ARGV[4] == '0' and KEYS[3] then redis.call('UNLINK', KEYS[3]) end
if KEYS[2] ~= KEYS[1] then
  redis.call('HSET', KEYS[2], ARGV[1],
             '{"version":' .. v .. ',"schema":' .. ARGV[2] .. extra .. '}')
end
redis.call('PUBLISH', ARGV[3], ARGV[1])
return v
