/**
 * The hub-transport contract and the model-based test on the Redis transport,
 * over one real redis-server for the file (a fresh key prefix per case).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t from 'tap'
import { startRedisServer, type RedisServer } from './helpers/redis-server.js'
import { redisBackend, transportContract } from './helpers/transport-conformance.js'

let server: RedisServer
let dir: string
t.before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'conf-redis-'))
  server = await startRedisServer({ dir })
})
t.teardown(async () => {
  await server.stop()
  await rm(dir, { recursive: true, force: true })
})

t.test('contract', async t => { transportContract(t, redisBackend(server.url)) })
