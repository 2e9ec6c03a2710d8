-- registerTopic.
-- KEYS[1] the topic's hash, KEYS[2] the index of topics, KEYS[3] the
-- topic's history stream
-- ARGV[1] name, ARGV[2] schema (JSON), ARGV[3] a new registration id,
-- which is also the topic's first epoch; ARGV[4] and ARGV[5] the
-- retention (revisions kept, seconds) and ARGV[6] the storage ("memory"),
-- each "" when not asked for: the defaults then apply; ARGV[7] the schema
-- kind ("" for a key-set schema, "json-schema", "json-schema format"),
-- ARGV[8] the compatibility mode ("" for none); the index entry names
-- them after the schema unless they are a key-set schema and none
-- In a cluster KEYS[2] is KEYS[1]: the topic's hash is its own entry of
-- the index.
-- Returns {1} when registered, {0, schema, kind} when the topic exists
-- (its retention is left as it is).
local f = redis.call('HMGET', KEYS[1], 'schema', 'sk')
if f[1] then return {0, f[1], f[2] or ''} end
redis.call('HSET', KEYS[1], 'sv', 0, 'tag', ARGV[3] .. ':0',
           'schema', ARGV[2], 'seq', 0, 'rev', 0, 'epoch', ARGV[3])
local set = {hn = ARGV[4], ha = ARGV[5], sk = ARGV[7], cm = ARGV[8]}
for k, a in pairs(set) do
  if a and a ~= '' then redis.call('HSET', KEYS[1], k, a) end
end
if ARGV[6] == 'memory' then
  redis.call('HSET', KEYS[1], 'st', 'memory')
end
-- the history of an older registration of the name is not this one's
if KEYS[3] then redis.call('UNLINK', KEYS[3]) end
local extra = ''
if ARGV[7] and ARGV[7] ~= '' then extra = ',"schemaType":"json-schema"' end
if ARGV[8] and ARGV[8] ~= '' and ARGV[8] ~= 'none' then
  extra = extra .. ',"compatibility":"' .. ARGV[8] .. '"'
end
if KEYS[2] ~= KEYS[1] then
  redis.call('HSET', KEYS[2], ARGV[1],
             '{"version":0,"schema":' .. ARGV[2] .. extra .. '}')
end
return {1}
