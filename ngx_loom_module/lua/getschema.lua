-- getSchema, and the versions an updateSchema is checked against.
-- KEYS[1] the topic's hash
-- ARGV[1] "" for the current version, a number for that version, "*" for
-- every version kept (oldest first)
-- The current schema is "schema" (kind "sk"), version "sv"; the older
-- versions kept are "s:<version>" (kind "k:<version>") from "vl" up.
-- Returns nil when the topic does not exist; otherwise {version, lowest
-- version kept, compatibility mode, then version, kind, schema for each
-- version asked for and kept}: no triple when it is not kept.
local h = KEYS[1]
local f = redis.call('HMGET', h, 'sv', 'vl', 'cm', 'schema', 'sk')
if not f[4] then return false end
local v = tonumber(f[1]) or 0
local low = tonumber(f[2]) or v
local out = {v, low, f[3] or ''}
local function add(n)
  if n == v then
    out[#out + 1] = n
    out[#out + 1] = f[5] or ''
    out[#out + 1] = f[4]
  elseif n >= low and n < v then
    local s = redis.call('HMGET', h, 's:' .. n, 'k:' .. n)
    if s[1] then
      out[#out + 1] = n
      out[#out + 1] = s[2] or ''
      out[#out + 1] = s[1]
    end
  end
end
if ARGV[1] == '*' then
  for n = low, v do add(n) end
elseif ARGV[1] == '' then
  add(v)
else
  add(tonumber(ARGV[1]) or -1)
end
return out
