-- Many reads in one call (see matcher/redis_store.py): ARGV[1] is 'd' (each key's record,
-- HGET key d; nil for none) or 'all' (each key's whole hash, HGETALL), then the keys.
local out = {}
if ARGV[1] == 'd' then
  for i = 2, #ARGV do out[i - 1] = redis.call('HGET', ARGV[i], 'd') end
else
  for i = 2, #ARGV do out[i - 1] = redis.call('HGETALL', ARGV[i]) end
end
return out
