-- a connection claims its ClientId for every node that shares the Redis,
-- or refreshes its claim.
-- KEYS[1] the claim, P{c:<id>}
-- ARGV[1] the owner ("<node>:<pid>:<connection>"), ARGV[2] the ttl in
-- milliseconds, ARGV[3] a stale owner of the same node that may be
-- replaced, or ""
-- Returns 1 when the claim is the owner's now (made, refreshed or made
-- again after Redis lost it), or the value of the owner that holds it.
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] and v ~= ARGV[3] then
  return v
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
