-- listTopics in a cluster: a page of the topics of one master, where the
-- topic's hash is its entry of the index (there is no index hash).
-- No KEYS: the keys are those SCAN finds on this node.
-- ARGV[1] the SCAN cursor, ARGV[2] how many to ask SCAN for, ARGV[3] the
-- pattern of the topics' hashes ("P{t:*}", P escaped), ARGV[4] the
-- length of "P{t:", ARGV[5] this master's number, ARGV[6] the next
-- master's (0 after the last)
-- Returns {cursor, {name, entry, ...}} as HSCAN of the index would: the
-- cursor is "<SCAN cursor> * 1024 + <master>", or the next master's
-- number when this one is done; an entry is {"version":v,"schema":...} with the kind and mode as in
-- the index (register.lua).
local r = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[3], 'COUNT', ARGV[2],
                     'TYPE', 'hash')
local out = {}
local skip = tonumber(ARGV[4])
for _, k in ipairs(r[2]) do
  local f = redis.call('HMGET', k, 'sv', 'schema', 'tag', 'sk', 'cm')
  if f[2] and f[3] then
    local extra = ''
    if f[4] then extra = ',"schemaType":"json-schema"' end
    if f[5] and f[5] ~= 'none' then
      extra = extra .. ',"compatibility":"' .. f[5] .. '"'
    end
    out[#out + 1] = string.sub(k, skip + 1, -2)
    out[#out + 1] = '{"version":' .. (f[1] or 0) .. ',"schema":' .. f[2]
                    .. extra .. '}'
  end
end
local c = tonumber(r[1])
if c == 0 then return {ARGV[6], out} end
return {string.format('%.0f', c * 1024 + tonumber(ARGV[5])), out}
