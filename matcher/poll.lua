-- The start of a worker's step, as one snapshot (see matcher/store.py, Store.poll).
-- ARGV: the change log's key, its counter's key, its floor's key, the change number last seen,
-- then triples (sorted set key, highest score or '' for none, limit).
-- Reply: {latest change number, {key, number, key, number, ...} or nil when the log no longer
-- reaches back to the number seen, then one list of members per triple}.
local changes, since = ARGV[1], tonumber(ARGV[4])
local latest = tonumber(redis.call('GET', ARGV[2]) or '0')
local floor = tonumber(redis.call('GET', ARGV[3]) or '0')
local changed = false
if since >= floor then
  changed = redis.call('ZRANGEBYSCORE', changes, '(' .. ARGV[4], '+inf', 'WITHSCORES')
end
local out = {latest, changed}
for i = 5, #ARGV, 3 do
  local key, max, limit = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  if max == '' then
    out[#out + 1] = redis.call('ZRANGE', key, 0, limit - 1)
  else
    out[#out + 1] = redis.call('ZRANGEBYSCORE', key, '-inf', max, 'LIMIT', 0, limit)
  end
end
return out
