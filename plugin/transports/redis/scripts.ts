/**
 * The Lua scripts of the Redis transport (each runs atomically in Redis) and
 * the key layout they share. Keys (prefix `sse` by default):
 *
 * - `sse:seq`      the id counter (a string integer); ids are `String(seq)`.
 * - `sse:epoch`    the id the current counter epoch started from (see "Data
 *                  loss" in ./live.ts).
 * - `sse:all`      the firehose: every event of every topic, `XADD MAXLEN ~ firehose`.
 *                  Each instance runs one `XREAD BLOCK` loop on it for live delivery.
 * - `sse:t:<topic>` per-topic history, exactly the newest `history` events;
 *                  expires once the topic is idle for `topicTtlMs`.
 * - `sse:m:<topic>` the topic's mark: its newest id and the newest id trimmed
 *                  from its history; outlives the stream by another `topicTtlMs`.
 * - `sse:ticks`    a few counter checkpoints (one per `topicTtlMs / 4`), which
 *                  bound the newest id of any topic whose mark expired.
 * - `sse:i:<instance>` the last id an instance published (expires when idle).
 *
 * Every publish is one script: it increments the counter and adds the event
 * to the firehose and to the topic's stream, both with the explicit stream
 * id `<seq>-0`. So ids are totally ordered across topics and instances, the
 * firehose order is the id order, and stream ids equal hub ids. PUBLISH and
 * HEAD answer Redis's time first (the call layer learns the clock offset
 * from it); PUBLISH is a write, its ARGV[1] the deadline after which Redis
 * refuses it (../../redis/call.ts).
 */
import { CLOCK_LUA, Script } from '../../redis/script.js'

export interface Keys {
  seq: string
  epoch: string
  all: string
  ticks: string
  /** The per-topic stream. */
  topic: (topic: string) => string
  /** The per-topic mark: hash { last, trimmed } (see above). */
  mark: (topic: string) => string
  /** The last id an instance published (its publish replies carry only what others published after it). */
  instance: (token: string) => string
}

export function keysOf (prefix: string): Keys {
  return {
    seq: `${prefix}:seq`,
    epoch: `${prefix}:epoch`,
    all: `${prefix}:all`,
    ticks: `${prefix}:ticks`,
    topic: t => `${prefix}:t:${t}`,
    mark: t => `${prefix}:m:${t}`,
    instance: token => `${prefix}:i:${token}`
  }
}

const LIB = CLOCK_LUA + `
local function top(key)
  local e = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  if e[1] then return tonumber(string.match(e[1][1], '^(%d+)')) end
  return 0
end
local function fmt(n) return string.format('%.0f', n) end
local function streamOrNone(key)
  local t = redis.call('TYPE', key).ok
  if t ~= 'none' and t ~= 'stream' then return redis.error_reply('fastify-htmx-sse: key ' .. key .. ' holds a ' .. t .. ', not a stream') end
  return nil
end
-- KEYS[1] seq, KEYS[2] epoch, KEYS[3] firehose. Returns the counter and 0, or
-- 1 when a new epoch started because the counter was missing or behind the
-- floor (the highest id the calling instance has seen) or the streams, i.e.
-- Redis lost data, or 2 when it started on an empty Redis (first use).
local function ensure(floor, topicKey)
  local v = redis.call('GET', KEYS[1])
  local cur = v and tonumber(v)
  local min = math.max(floor, top(KEYS[3]))
  if topicKey then min = math.max(min, top(topicKey)) end
  if cur and cur >= min then return cur, 0 end
  local t = redis.call('TIME')
  local base = math.max(tonumber(t[1]) * 1000000 + tonumber(t[2]), min)
  redis.call('SET', KEYS[1], fmt(base))
  redis.call('SET', KEYS[2], fmt(base))
  if cur or min > 0 then return base, 1 end
  return base, 2
end
local function epochOf()
  return tonumber(redis.call('GET', KEYS[2]) or '0')
end
`

/**
 * How long an instance's last-publish key outlives its last publish. Losing
 * it only makes the next reply start from the instance's last delivery,
 * which an idle instance has caught up with anyway.
 */
const INSTANCE_KEY_MS = 60_000

/** Most foreign events one publish reply carries; the live loop delivers the rest. */
export const MISSED_MAX = 256

/**
 * KEYS seq epoch firehose ticks topic mark instance; ARGV deadline floor
 * firehoseLen history topic after ttlMs field value... → { redisMs, id,
 * newEpoch, missed, epoch }.
 *
 * A publish reaching Redis after its deadline (in Redis time; 0: none) is
 * refused, so one that ioredis resends after an outage cannot be applied long
 * after its caller was told it failed.
 *
 * `missed`: what other instances published between this instance's previous
 * publish (its `instance` key) or its last delivery (`after`), whichever is
 * newer, and this one — at most MISSED_MAX. Never this instance's own events:
 * those in flight before this one come back with their own replies, so a
 * reply costs what others published meanwhile, not what this instance has in
 * flight.
 *
 * Topics idle for ttlMs expire (the stream); their mark (newest id, newest id
 * trimmed) outlives the stream by another ttlMs, and `ticks` (counter
 * checkpoints, one per ttlMs/4) bound what an expired mark could have held.
 */
const PUBLISH = LIB + `
local now, late = arrived('publish')
if late then return late end
local bad = streamOrNone(KEYS[3]) or streamOrNone(KEYS[5])
if bad then return bad end
local _, fresh = ensure(tonumber(ARGV[2]), KEYS[5])
local ttl = tonumber(ARGV[7])
local seq = redis.call('INCR', KEYS[1])
local id = fmt(seq)
local sid = id .. '-0'
local prevOwn = tonumber(redis.call('GET', KEYS[7]) or '-1')
redis.call('SET', KEYS[7], id, 'PX', ${INSTANCE_KEY_MS})
redis.call('XADD', KEYS[5], sid, unpack(ARGV, 8))
local over = redis.call('XLEN', KEYS[5]) - tonumber(ARGV[4])
if over > 0 then
  local old = redis.call('XRANGE', KEYS[5], '-', '+', 'COUNT', over)
  redis.call('HSET', KEYS[6], 'trimmed', string.match(old[#old][1], '^(%d+)'))
  redis.call('XTRIM', KEYS[5], 'MAXLEN', ARGV[4])
end
redis.call('HSET', KEYS[6], 'last', id)
redis.call('PEXPIRE', KEYS[5], ttl)
redis.call('PEXPIRE', KEYS[6], ttl * 2)
local tick = redis.call('ZREVRANGE', KEYS[4], 0, 0, 'WITHSCORES')
if not tick[2] or now - tonumber(tick[2]) >= ttl / 4 then
  redis.call('ZADD', KEYS[4], now, fmt(seq - 1))
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. fmt(now - ttl * 3))
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], sid, 'topic', ARGV[5], unpack(ARGV, 8))
local missed = {}
local from = math.max(tonumber(ARGV[6]), prevOwn)
if fresh == 0 and from >= 0 and seq - 1 > from then
  missed = redis.call('XRANGE', KEYS[3], fmt(from + 1) .. '-0', fmt(seq - 1) .. '-0', 'COUNT', ${MISSED_MAX})
end
return { now, id, fresh, missed, fmt(epochOf()) }
`

/** KEYS seq epoch firehose; ARGV floor → { redisMs, seq, firehoseTop, newEpoch, epoch } */
const HEAD = LIB + `
local seq, fresh = ensure(tonumber(ARGV[1]), nil)
return { nowMs(), fmt(seq), fmt(top(KEYS[3])), fresh, fmt(epochOf()) }
`

/**
 * KEYS seq epoch firehose ticks (stream mark)...; ARGV floor after upTo limit
 * ttlMs → { complete, seq, newEpoch, entries: [topicIndex, streamId, fields]... }
 *
 * One page of a replay over all of a subscription's topics at one instant:
 * events with after < id ≤ upTo, oldest first, at most `limit` (each topic
 * reads at most `limit`, so a page costs topics × limit entries at most,
 * whatever the history). Complete when every topic's history still reaches
 * back to `after`: the id belongs to this epoch, is not ahead of the counter,
 * nothing after it was trimmed, and the topic did not expire with events
 * after it. A topic with neither stream nor mark either never had events or
 * expired long ago: complete only when no topic could have had an event after
 * `after` and expired since (the oldest tick of the window bounds that).
 */
const SINCE = LIB + `
local seq, fresh = ensure(tonumber(ARGV[1]), nil)
local after = tonumber(ARGV[2])
local upTo = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
local complete = 1
if after < epochOf() or after > seq then complete = 0 end
local n = (#KEYS - 4) / 2
local out = {}
for i = 1, n do
  if complete == 0 then break end
  local stream = KEYS[3 + 2 * i]
  local mark = redis.call('HMGET', KEYS[4 + 2 * i], 'last', 'trimmed')
  local exists = redis.call('EXISTS', stream) == 1
  if mark[1] then
    if after < tonumber(mark[2] or '0') then complete = 0 end
    if not exists and after < tonumber(mark[1]) then complete = 0 end
  elseif not exists then
    local t = redis.call('ZRANGEBYSCORE', KEYS[4], nowMs() - ttl * 2, '+inf', 'LIMIT', 0, 1)
    local bound = seq
    if t[1] then bound = tonumber(t[1]) end
    if after < bound then complete = 0 end
  end
  if complete == 1 and exists and upTo > after then
    local entries = redis.call('XRANGE', stream, fmt(after + 1) .. '-0', fmt(upTo) .. '-0', 'COUNT', limit)
    for _, e in ipairs(entries) do
      out[#out + 1] = { tonumber(string.match(e[1], '^(%d+)')), i, e }
    end
  end
end
if complete == 0 then return { 0, fmt(seq), fresh, {} } end
table.sort(out, function (a, b) return a[1] < b[1] end)
local page = {}
for k = 1, math.min(limit, #out) do page[k] = { out[k][2], out[k][3][1], out[k][3][2] } end
return { 1, fmt(seq), fresh, page }
`

/** KEYS topic mark; ARGV ttlMs → 1. The mark keeps the newest id as trimmed, so older ids get reset. */
const FORGET = LIB + `
local last = top(KEYS[1])
local mark = tonumber(redis.call('HGET', KEYS[2], 'last') or '0')
last = math.max(last, mark)
if last > 0 then
  redis.call('HSET', KEYS[2], 'last', fmt(last), 'trimmed', fmt(last))
  redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[1]) * 2)
end
redis.call('DEL', KEYS[1])
return 1
`

export const scripts = {
  publish: new Script(PUBLISH),
  head: new Script(HEAD),
  /** Keys: 4 + 2 per topic. */
  since: new Script(SINCE),
  forget: new Script(FORGET)
}
