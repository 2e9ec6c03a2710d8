-- a connection gives its ClientId back: only its own claim goes, so a
-- late release never frees the claim of another connection.
-- KEYS[1] the claim, ARGV[1] the owner
-- Returns 1 when the claim was deleted, 0 when it was not the owner's.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
