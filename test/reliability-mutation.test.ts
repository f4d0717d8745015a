/**
 * Issue 11, item 5: `publish` must validate and copy the event's fields before
 * awaiting its data, and store only what was validated. Mutating the event
 * object while its data renders must have no effect: either the event goes
 * out with its original fields, or publish rejects and nothing is stored.
 * Either way a reconnect from before it gets the later events.
 */
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import type { HubEvent } from '../plugin/index.js'
import { startApp } from './helpers/app.js'
import { connect, waitUntil } from './helpers/sse-client.js'

const hubRoute = (app: FastifyInstance): void => {
  app.get('/stream', (_request, reply) => reply.sse({ topics: ['m'] }))
}

const mutations: Array<[string, (ev: HubEvent) => void]> = [
  ['event set to a name with a line break', ev => { ev.event = 'x\ndata: y' }],
  ['retry set to a negative number', ev => { ev.retry = -1 }]
]

for (const [what, mutate] of mutations) {
  t.test(`an event mutated while its data renders (${what}) does not poison replay`, async t => {
    const { app, url } = await startApp({ heartbeatMs: false }, hubRoute)
    t.teardown(() => app.close())
    const before = await app.sseHub.publish('m', { event: 'note', data: 'before' })

    let render: (html: string) => void = () => {}
    const ev: HubEvent = { event: 'note', data: new Promise<string>(resolve => { render = resolve }) }
    const published = app.sseHub.publish('m', ev)
    mutate(ev) // after publish() was called, while its data is still rendering
    render('<p>rendered</p>')
    const outcome = await published.then(id => ({ id }), (err: unknown) => ({ err }))
    const later = await app.sseHub.publish('m', { event: 'note', data: 'later' })

    const kept = await app.sseHub.history('m', { limit: 10 })
    t.ok(kept.every(m => m.event === undefined || !/[\r\n]/.test(m.event)), 'history holds no event name with a line break',
      { events: kept.map(m => m.event) })
    t.ok(kept.every(m => m.retry === undefined || (Number.isSafeInteger(m.retry) && m.retry >= 0)), 'history holds no invalid retry',
      { retries: kept.map(m => m.retry) })
    if ('id' in outcome) {
      const stored = kept.find(m => m.id === outcome.id)
      t.match(stored, { event: 'note', data: '<p>rendered</p>' }, 'published with the fields it had when publish() was called')
    } else {
      t.same(kept.map(m => m.data), ['before', 'later'], `publish rejected (${String(outcome.err)}) and nothing of it was stored`)
    }

    // A reconnect from before it: 200, and the later events (not zero events and a close).
    const c = await connect(`${url}/stream`, { headers: { 'last-event-id': before } })
    t.equal(c.status, 200)
    await waitUntil(() => c.events.some(e => e.id === later) || c.isEnded(), 5000, 'the later event or the end of the stream').catch(() => {})
    const ended = c.isEnded()
    t.ok(c.events.some(e => e.id === later), `the reconnect gets the later event (got ${c.events.length} events${ended ? ', then the stream closed' : ''})`)
    t.notOk(ended, 'and the stream stays open')
    t.notMatch(c.raw(), /event: x\n|retry: -1/, 'nothing mutated reaches the wire')
    c.close()
  })
}
