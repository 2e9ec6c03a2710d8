-- the history action: a page of a topic's history.
-- KEYS[1] the topic's hash, KEYS[2] its history stream
-- ARGV[1] since (a revision, exclusive; "" for none), ARGV[2] the most
-- entries to return, ARGV[3] "1" for newest first, ARGV[4] and ARGV[5]
-- from and until (ms since 1970, inclusive; "" for none), ARGV[6] and
-- ARGV[7] the default retention (revisions kept, seconds)
-- Forwards, since means after that revision; newest first, before it.
-- Entries older than maxAge count as gone even before they are trimmed,
-- and so do revisions older than the newest N that share a stream entry
-- with a newer one (a group, see append.lua).
-- Time bounds are found by binary search over the revisions: the times
-- of a topic's entries never go down.
-- Returns {1, epoch, top rev, entries} with one entry per revision, as
-- XRANGE gives a one-message entry ("<rev>-0", t, d, o, l); {0, epoch,
-- top rev, {}} when the topic keeps no history; nil when the topic does
-- not exist.
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

-- the revisions of an entry: "<rev>-0" holds one, "<last>-<k>" k
local function span(e)
  local hi, k = string.match(e[1], '^(%d+)-(%d+)$')
  hi, k = tonumber(hi), tonumber(k)
  if k == 0 then return hi, hi end
  return hi - k + 1, hi
end
-- the entry that holds revision m (or the first after it)
local function probe(m)
  return redis.call('XRANGE', s, m .. '-0', '+', 'COUNT', 1)[1]
end
-- the first revision in [lo, hi] whose time is x or later, nil if none
local function at(x, lo, hi)
  if tonumber(probe(hi)[2][2]) < x then return nil end
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if tonumber(probe(mid)[2][2]) >= x then hi = mid else lo = mid + 1 end
  end
  return lo
end
-- each revision of entry e in [a, b] to out, up to limit, in the order
-- asked for
local out = {}
local function expand(e, a, b, down)
  local lo, hi = span(e)
  if lo == hi then
    if lo >= a and lo <= b and #out < limit then out[#out + 1] = e end
    return
  end
  local fl, ts = e[2], e[2][2]
  local from, to, step = lo, hi, 1
  if down then from, to, step = hi, lo, -1 end
  for r = from, to, step do
    if #out >= limit then return end
    if r >= a and r <= b then
      local j = 2 * (r - lo) + 3
      local o, l = string.match(fl[j], '^(%d+):(%d+)$')
      out[#out + 1] = {r .. '-0', {'t', ts, 'd', fl[j + 1], 'o', o,
                                   'l', l}}
    end
  end
end

local a = span(first)
local _, b = span(last)
if a < top - n + 1 then a = top - n + 1 end
if a > b then return {1, epoch, top, {}} end
local from = tonumber(ARGV[4])
local age = tonumber(f[6] or ARGV[7])
if age > 0 then
  local t = redis.call('TIME')
  local cut = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
              - age * 1000
  if not from or from < cut then from = cut end
end
if from then
  local r = at(from, a, b)
  if not r then return {1, epoch, top, {}} end
  a = r
end
local untl = tonumber(ARGV[5])
if untl then
  local r = at(untl + 1, a, b)
  if r then b = r - 1 end
end
local since = tonumber(ARGV[1])
if ARGV[3] == '1' then
  if since and since - 1 < b then b = since - 1 end
  if a > b then return {1, epoch, top, {}} end
  -- the entries that hold the revisions of the page, and no more
  local e = redis.call('XREVRANGE', s, probe(b)[1],
                       math.max(a, b - limit + 1) .. '-0', 'COUNT', limit)
  for i = 1, #e do expand(e[i], a, b, true) end
else
  if since and since + 1 > a then a = since + 1 end
  if a > b then return {1, epoch, top, {}} end
  local e = redis.call('XRANGE', s, a .. '-0',
                       probe(math.min(b, a + limit - 1))[1], 'COUNT', limit)
  for i = 1, #e do expand(e[i], a, b, false) end
end
return {1, epoch, top, out}
