/**
 * The Lua scripts of the Redis run store (store-redis.ts): each is a check
 * and a write done atomically, and each reads Redis `TIME` for every instant
 * it decides on (a write's deadline, a lease's end, expiry). A write takes
 * its deadline as ARGV[1] and answers Redis's time first (see
 * ../plugin/redis/call.ts, which sends them).
 */
import { CLOCK_LUA, Script } from '../plugin/redis/script.js'

const LIB = CLOCK_LUA + `
local function held(key, owner, kind)
  local f = redis.call('HMGET', key, 'status', 'owner', 'kind')
  return f[1] == 'running' and f[2] == owner and f[3] == kind
end
`

/**
 * KEYS run byKind leases entries; ARGV deadline prefix id maxRuns startedAt
 * leaseMs field value... → { redisMs, created, dropped }. Oldest first is the
 * zset order; a run whose status is not 'running' may go. The lease ends
 * leaseMs after Redis's now.
 */
const CREATE = LIB + `
local now, late = arrived('write')
if late then return late end
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('EXISTS run ' .. ARGV[3] .. ' exists') end
local prefix = ARGV[2]
local excess = redis.call('ZCARD', KEYS[2]) + 1 - tonumber(ARGV[4])
local dropped = {}
if excess > 0 then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    if excess <= 0 then break end
    local key = prefix .. ':r:' .. id
    if redis.call('HGET', key, 'status') ~= 'running' then
      redis.call('DEL', key, prefix .. ':e:' .. id)
      redis.call('ZREM', KEYS[2], id)
      redis.call('ZREM', KEYS[3], id)
      dropped[#dropped + 1] = id
      excess = excess - 1
    end
  end
end
if excess > 0 then return { now, 0, dropped } end
local lease = now + tonumber(ARGV[6])
redis.call('HSET', KEYS[1], 'status', 'running', 'leaseUntil', lease, unpack(ARGV, 7))
redis.call('DEL', KEYS[4])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[3])
redis.call('ZADD', KEYS[3], lease, ARGV[3])
return { now, 1, dropped }
`

/** KEYS run; ARGV deadline prefix id owner kind then (field, set 1|0, value)... → { redisMs, written } */
const UPDATE = LIB + `
local now, late = arrived('write')
if late then return late end
if not held(KEYS[1], ARGV[4], ARGV[5]) then return { now, 0 } end
local status = 'running'
for i = 6, #ARGV, 3 do
  if ARGV[i + 1] == '1' then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2]) else redis.call('HDEL', KEYS[1], ARGV[i]) end
  if ARGV[i] == 'status' then status = (ARGV[i + 1] == '1') and ARGV[i + 2] or false end
end
if status ~= 'running' then redis.call('ZREM', ARGV[2] .. ':lease:' .. ARGV[5], ARGV[3]) end
return { now, 1 }
`

/**
 * KEYS run entries; ARGV deadline owner kind entry index (-1: none) → { redisMs, written }.
 * With an index, a transcript already past it means an earlier attempt landed.
 */
const APPEND = LIB + `
local now, late = arrived('write')
if late then return late end
if not held(KEYS[1], ARGV[2], ARGV[3]) then return { now, 0 } end
local index = tonumber(ARGV[5])
if index >= 0 and redis.call('LLEN', KEYS[2]) > index then return { now, 1 } end
redis.call('RPUSH', KEYS[2], ARGV[4])
return { now, 1 }
`

/** KEYS the runs; ARGV deadline prefix owner kind leaseMs ids... → { redisMs, ids with a cancel request } */
const RENEW = LIB + `
local now, late = arrived('write')
if late then return late end
local lease = now + tonumber(ARGV[5])
local cancel = {}
for i, key in ipairs(KEYS) do
  local f = redis.call('HMGET', key, 'status', 'owner', 'kind', 'cancel')
  if f[1] == 'running' and f[2] == ARGV[3] and f[3] == ARGV[4] then
    local id = ARGV[5 + i]
    redis.call('HSET', key, 'leaseUntil', lease)
    redis.call('ZADD', ARGV[2] .. ':lease:' .. f[3], lease, id)
    if f[4] == 'true' then cancel[#cancel + 1] = id end
  end
end
return { now, cancel }
`

/** KEYS run; ARGV deadline kind → { redisMs, first (1|0), the run's hash (empty: unknown or another kind) } */
const REQUEST_CANCEL = LIB + `
local now, late = arrived('write')
if late then return late end
local f = redis.call('HMGET', KEYS[1], 'status', 'kind', 'cancel')
if f[2] ~= ARGV[2] then return { now, 0, {} } end
local first = 0
if f[1] == 'running' and f[3] ~= 'true' then
  redis.call('HSET', KEYS[1], 'cancel', 'true')
  first = 1
end
return { now, first, redis.call('HGETALL', KEYS[1]) }
`

/** KEYS run; ARGV deadline prefix id kind → { redisMs, the run's hash when this call interrupted it (at Redis's now), else empty } */
const INTERRUPT = LIB + `
local now, late = arrived('write')
if late then return late end
local f = redis.call('HMGET', KEYS[1], 'status', 'leaseUntil', 'kind')
local lease = tonumber(f[2])
if f[1] ~= 'running' or f[3] ~= ARGV[4] or lease == nil or lease >= now then return { now, {} } end
redis.call('HSET', KEYS[1], 'status', 'interrupted', 'finishedAt', now)
redis.call('ZREM', ARGV[2] .. ':lease:' .. f[3], ARGV[3])
return { now, redis.call('HGETALL', KEYS[1]) }
`

/** KEYS leases → ids whose lease ended before Redis's now. */
const EXPIRED = LIB + `
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. nowMs())
`

/** KEYS run entries; ARGV kind → the transcript (empty: unknown or another kind). */
const ENTRIES = `
if redis.call('HGET', KEYS[1], 'kind') ~= ARGV[1] then return {} end
return redis.call('LRANGE', KEYS[2], 0, -1)
`

/** KEYS byKind; ARGV prefix stop → the hashes of the newest runs. One script, so the list is one moment's. */
const RECENT = `
local out = {}
for _, id in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[2]))) do
  out[#out + 1] = redis.call('HGETALL', ARGV[1] .. ':r:' .. id)
end
return out
`

export const scripts = {
  create: new Script(CREATE),
  update: new Script(UPDATE),
  append: new Script(APPEND),
  renew: new Script(RENEW),
  requestCancel: new Script(REQUEST_CANCEL),
  interrupt: new Script(INTERRUPT),
  expired: new Script(EXPIRED),
  entries: new Script(ENTRIES),
  recent: new Script(RECENT)
}
