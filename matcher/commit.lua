-- The matcher's atomic step (see matcher/store.py, Commit), for one commit or a batch of them.
-- ARGV[1]: a msgpack array of commits, each [checks, writes, ops] with every key prefixed:
--   checks: [[record key, version it must have now (0: absent)], ...]
--   writes: [[record key, new version, packed record], ...]
--   ops:    [[name, key, member, value], ...]
-- ARGV[2], ARGV[3], ARGV[4]: the caps of the offer log, the observation log and the change log.
-- Each commit is applied whole if all its checks hold, else not at all; the reply is one number
-- per commit, in order: 0 if it failed, else the number of its last change (1 if it had none). (Keys travel inside ARGV, not KEYS: the store runs on one Redis primary,
-- with Sentinel for failover, never on Redis Cluster.)
-- A 'change' op numbers the change (key..':seq') and puts its member in the change log (a sorted
-- set by number); past the cap the oldest are trimmed and the highest trimmed number is kept in
-- key..':floor', so a reader can tell that it missed some.
local commits = cmsgpack.unpack(ARGV[1])
local cap, obs_cap, changes_cap = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local changelog = nil
local results = {}

local function apply(c)
  local last = 1
  for _, check in ipairs(c[1]) do
    local v = redis.call('HGET', check[1], 'v')
    local cur = 0
    if v then cur = tonumber(v) end
    if cur ~= tonumber(check[2]) then return 0 end
  end
  for _, w in ipairs(c[2]) do
    redis.call('HSET', w[1], 'v', w[2], 'd', w[3])
  end
  for _, op in ipairs(c[3]) do
    local name, k, m, val = op[1], op[2], op[3], op[4]
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
      last = redis.call('INCR', k .. ':seq')
      redis.call('ZADD', k, last, m)
      changelog = k
    else error('unknown matcher store op ' .. name) end
  end
  return last
end

for i, c in ipairs(commits) do
  results[i] = apply(c)
end
if changelog then
  local n = redis.call('ZCARD', changelog)
  if n > changes_cap + 1000 then
    local last = redis.call('ZRANGE', changelog, n - changes_cap - 1, n - changes_cap - 1, 'WITHSCORES')
    redis.call('SET', changelog .. ':floor', last[2])
    redis.call('ZREMRANGEBYRANK', changelog, 0, n - changes_cap - 1)
  end
end
return results
