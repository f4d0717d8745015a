/**
 * The Redis transport with ioredis 6 (the current major; the peer range is
 * >=5): every Redis test file runs again, as its own process, with the
 * ioredis 6 client (IOREDIS=6, see test/helpers/redis-server.ts).
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const FILES = ['test/redis-delivery.test.ts', 'test/redis-outage.test.ts', 'test/redis-gap.test.ts', 'test/redis-close.test.ts', 'test/run-store-redis.test.ts']

t.test('ioredis 6 is the one under test', async t => {
  t.match((require('ioredis-6/package.json') as { version: string }).version, /^6\./)
})

for (const file of FILES) {
  t.test(`${file} with ioredis 6`, async t => {
    const out: string[] = []
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(process.execPath, ['--conditions=htmx-sse-source', '--import', 'tsx', file], {
        env: { ...process.env, IOREDIS: '6' },
        stdio: ['ignore', 'pipe', 'pipe']
      })
      child.stdout.on('data', (d: Buffer) => out.push(d.toString()))
      child.stderr.on('data', (d: Buffer) => out.push(d.toString()))
      child.once('error', reject)
      child.once('exit', resolve)
    })
    const text = out.join('')
    const failed = text.split('\n').filter(line => /^\s*not ok /.test(line))
    t.same(failed, [], 'no failing assertion')
    t.equal(code, 0, `exit code (output tail: ${text.slice(-600)})`)
    t.match(text, /^ok 1 - /m, 'its assertions ran')
  })
}
