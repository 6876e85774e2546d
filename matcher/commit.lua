-- The matcher's one atomic step (see matcher/store.py, Commit).
-- KEYS: every key the commit touches (records first, in check order), prefixed.
-- ARGV: n_checks, expected version per check,
--       n_writes, (key index, version, packed record) per write,
--       n_ops, (name, key index, member, value) per op, then the offer log's cap, the
--       observation log's cap and the change log's cap.
-- A 'change' op numbers the change (KEYS[k]..':seq') and puts its member in the change log
-- (a sorted set by number, KEYS[k]); past the cap the oldest are trimmed and the highest trimmed
-- number is kept in KEYS[k]..':floor', so a reader can tell that it missed some.
-- Returns 1 when applied, 0 when a check failed (nothing changed).
local a = 1
local nc = tonumber(ARGV[a]); a = a + 1
for i = 1, nc do
  local v = redis.call('HGET', KEYS[i], 'v')
  local cur = 0
  if v then cur = tonumber(v) end
  if cur ~= tonumber(ARGV[a]) then return 0 end
  a = a + 1
end
local nw = tonumber(ARGV[a]); a = a + 1
for i = 1, nw do
  redis.call('HSET', KEYS[tonumber(ARGV[a])], 'v', ARGV[a + 1], 'd', ARGV[a + 2])
  a = a + 3
end
local no = tonumber(ARGV[a]); a = a + 1
local cap = tonumber(ARGV[a + 4 * no])
local obs_cap = tonumber(ARGV[a + 4 * no + 1])
local changes_cap = tonumber(ARGV[a + 4 * no + 2])
local changelog = nil
for i = 1, no do
  local name, k, m, val = ARGV[a], KEYS[tonumber(ARGV[a + 1])], ARGV[a + 2], ARGV[a + 3]
  a = a + 4
  if name == 'zadd' then redis.call('ZADD', k, val, m)
  elseif name == 'zrem' then redis.call('ZREM', k, m)
  elseif name == 'sadd' then redis.call('SADD', k, m)
  elseif name == 'srem' then redis.call('SREM', k, m)
  elseif name == 'hset' then redis.call('HSET', k, m, val)
  elseif name == 'hdel' then redis.call('HDEL', k, m)
  elseif name == 'hincr' then redis.call('HINCRBYFLOAT', k, m, val)
  elseif name == 'publish' then redis.call('PUBLISH', k, val)
  elseif name == 'log' then
    redis.call('RPUSH', k, val)
    redis.call('LTRIM', k, -cap, -1)
  elseif name == 'rpush' then
    redis.call('RPUSH', k, val)
    redis.call('LTRIM', k, -obs_cap, -1)
  elseif name == 'change' then
    redis.call('ZADD', k, redis.call('INCR', k .. ':seq'), m)
    changelog = k
  else return redis.error_reply('unknown matcher store op ' .. name) end
end
if changelog then
  local n = redis.call('ZCARD', changelog)
  if n > changes_cap + 1000 then
    local last = redis.call('ZRANGE', changelog, n - changes_cap - 1, n - changes_cap - 1, 'WITHSCORES')
    redis.call('SET', changelog .. ':floor', last[2])
    redis.call('ZREMRANGEBYRANK', changelog, 0, n - changes_cap - 1)
  end
end
return 1
