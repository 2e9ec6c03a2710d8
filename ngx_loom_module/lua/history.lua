-- the history action: a page of a topic's history.
-- KEYS[1] the topic's hash, KEYS[2] its history stream
-- ARGV[1] since (a revision, exclusive; "" for none), ARGV[2] the most
-- entries to return, ARGV[3] "1" for newest first, ARGV[4] and ARGV[5]
-- from and until (ms since 1970, inclusive; "" for none), ARGV[6] and
-- ARGV[7] the default retention (revisions kept, seconds)
-- Forwards, since means after that revision; newest first, before it.
-- Entries older than maxAge count as gone even before they are trimmed.
-- Time bounds are found by binary search over the revisions: the times
-- of a topic's entries never go down.
-- Returns {1, epoch, top rev, entries} with entries as XRANGE gives
-- them; {0, epoch, top rev, {}} when the topic keeps no history; nil
-- when the topic does not exist.
local h, s = KEYS[1], KEYS[2]
local f = redis.call('HMGET', h, 'tag', 'rev', 'epoch', 'st', 'hn', 'ha')
if not f[1] then return false end
local epoch = f[3] or string.match(f[1], '^[^:]*')
local top = tonumber(f[2]) or 0
local n = tonumber(f[5] or ARGV[6])
if f[4] == 'memory' or n == 0 then return {0, epoch, top, {}} end
local limit = tonumber(ARGV[2])
local first = redis.call('XRANGE', s, '-', '+', 'COUNT', 1)[1]
if limit == 0 or not first then return {1, epoch, top, {}} end
local last = redis.call('XREVRANGE', s, '+', '-', 'COUNT', 1)[1]

local function rev(e) return tonumber(string.match(e[1], '^%d+')) end
local function probe(m)
  return redis.call('XRANGE', s, m .. '-0', '+', 'COUNT', 1)[1]
end
-- the first entry whose time is x or later, nil when there is none
local function at(x)
  local lo, hi = rev(first), rev(last)
  if tonumber(last[2][2]) < x then return nil end
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if tonumber(probe(mid)[2][2]) >= x then hi = mid else lo = mid + 1 end
  end
  return probe(lo)
end

local a, b = rev(first), rev(last)
local from = tonumber(ARGV[4])
local age = tonumber(f[6] or ARGV[7])
if age > 0 then
  local t = redis.call('TIME')
  local cut = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
              - age * 1000
  if not from or from < cut then from = cut end
end
if from then
  local e = at(from)
  if not e then return {1, epoch, top, {}} end
  a = rev(e)
end
local untl = tonumber(ARGV[5])
if untl then
  local e = at(untl + 1)
  if e then b = rev(e) - 1 end
end
local since = tonumber(ARGV[1])
local e
if ARGV[3] == '1' then
  if since and since - 1 < b then b = since - 1 end
  if a > b then return {1, epoch, top, {}} end
  e = redis.call('XREVRANGE', s, b, a, 'COUNT', limit)
else
  if since and since + 1 > a then a = since + 1 end
  if a > b then return {1, epoch, top, {}} end
  e = redis.call('XRANGE', s, a, b, 'COUNT', limit)
end
return {1, epoch, top, e}
