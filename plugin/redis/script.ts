/**
 * A Lua script run by its SHA1 (EVALSHA, so the text crosses the wire once),
 * and the Lua prelude every script that reads Redis's clock shares.
 */
import { createHash } from 'node:crypto'
import type { Redis } from 'ioredis'

/**
 * `nowMs()`: Redis's clock in ms. `arrived(what)`: for a write whose ARGV[1]
 * is its deadline in Redis time (0: none), Redis's now and, when the write
 * reached Redis after its deadline, the error reply that refuses it
 * (`EXPIRED …`, which the call layer turns into "not accepted").
 */
export const CLOCK_LUA = `
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function arrived(what)
  local now = nowMs()
  local deadline = tonumber(ARGV[1])
  if deadline > 0 and now > deadline then
    return now, redis.error_reply('EXPIRED ' .. what .. ' reached Redis ' .. (now - deadline) .. ' ms after its deadline; not applied')
  end
  return now, nil
end
`

export class Script {
  readonly sha: string
  constructor (readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex')
  }

  async run (client: Redis, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown> {
    try {
      return await client.evalsha(this.sha, keys.length, ...keys, ...args)
    } catch (err) {
      // A restarted, failed-over or flushed Redis has an empty script cache;
      // EVAL runs the script and caches it again, so the next EVALSHA finds it.
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
      return await client.eval(this.source, keys.length, ...keys, ...args)
    }
  }
}
