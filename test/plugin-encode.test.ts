import t from 'tap'
import fc from 'fast-check'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import { eventNameProblem, encodeComment, encodeEvent, encodeEventText, encodeRetry, sanitizeLastEventId } from '../plugin/encode.js'

function parse (text: string): { events: EventSourceMessage[], retries: number[], comments: string[], errors: string[] } {
  const events: EventSourceMessage[] = []
  const retries: number[] = []
  const comments: string[] = []
  const errors: string[] = []
  const parser = createParser({
    onEvent: e => events.push(e),
    onRetry: r => retries.push(r),
    onComment: c => comments.push(c),
    onError: e => errors.push(e.type)
  })
  parser.feed(text)
  return { events, retries, comments, errors }
}

t.test('encodes fields in order with LF line ends', async t => {
  t.equal(encodeEventText({ event: 'tick', id: '7', retry: 1500, data: 'hello' }),
    'event: tick\nid: 7\nretry: 1500\ndata: hello\n\n')
  t.equal(encodeEventText({ data: '' }), 'data: \n\n')
})

t.test('every line of data becomes its own data: line (CRLF, CR, LF)', async t => {
  t.equal(encodeEventText({ data: 'a\r\nb\rc\nd' }), 'data: a\ndata: b\ndata: c\ndata: d\n\n')
  t.equal(encodeEventText({ data: '<ul>\n  <li>x</li>\n</ul>\n' }), 'data: <ul>\ndata:   <li>x</li>\ndata: </ul>\ndata: \n\n')
  const { events } = parse(encodeEventText({ event: 'x', data: '<ul>\r\n  <li>x</li>\r</ul>' }))
  t.same(events.map(e => e.data), ['<ul>\n  <li>x</li>\n</ul>'])
})

t.test('CR/LF in event, CR/LF/NUL in id, bad retry: TypeError naming the field', async t => {
  t.throws(() => encodeEvent({ event: 'a\nb', data: 'x' }), { code: 'HTMX_SSE_INVALID_EVENT', message: /"event"/ })
  t.throws(() => encodeEvent({ event: 'a\rb', data: 'x' }), { code: 'HTMX_SSE_INVALID_EVENT', message: /"event"/ })
  t.throws(() => encodeEvent({ id: '1\n2', data: 'x' }), { code: 'HTMX_SSE_INVALID_EVENT', message: /"id"/ })
  t.throws(() => encodeEvent({ id: '1\r', data: 'x' }), { code: 'HTMX_SSE_INVALID_EVENT', message: /"id"/ })
  t.throws(() => encodeEvent({ id: '1\u00002', data: 'x' }), { code: 'HTMX_SSE_INVALID_EVENT', message: /"id"/ })
  t.throws(() => encodeEvent({ retry: -1, data: 'x' }), { code: 'HTMX_SSE_INVALID_EVENT', message: /"retry"/ })
  t.throws(() => encodeEvent({ retry: 1.5, data: 'x' }), { code: 'HTMX_SSE_INVALID_EVENT', message: /"retry"/ })
  t.throws(() => encodeEvent({ retry: Number.NaN, data: 'x' }), { code: 'HTMX_SSE_INVALID_EVENT', message: /"retry"/ })
  t.throws(() => encodeEvent({ data: 42 as unknown as string }), { code: 'HTMX_SSE_INVALID_EVENT', message: /data/ })
  t.throws(() => encodeRetry(-5), { code: 'HTMX_SSE_INVALID_EVENT' })
  t.ok((() => { try { encodeEvent({ event: 'a\nb', data: 'x' }) } catch (err) { return err instanceof TypeError } })(), 'and it is a TypeError')
})

t.test('event names htmx cannot route (commas, whitespace, empty) are refused like CR/LF', async t => {
  for (const event of ['a,b', 'a b', 'a\tb', ' a', 'a\u00a0b', '']) {
    t.throws(() => encodeEvent({ event, data: 'x' }), { code: 'HTMX_SSE_INVALID_EVENT', message: /"event"/ }, JSON.stringify(event))
  }
  t.equal(eventNameProblem('hx:release'), undefined, 'colons and dots are fine')
  t.equal(eventNameProblem('job.progress_2-x'), undefined)
})

t.test('one buffer per event', async t => {
  const frame = encodeEvent({ event: 'e', data: 'a\nb' })
  t.ok(Buffer.isBuffer(frame.bytes))
  t.equal(frame.bytes.toString(), 'event: e\ndata: a\ndata: b\n\n')
})

t.test('comments stay comments, whatever they contain', async t => {
  const { events, comments } = parse(encodeComment('ping\ndata: forged\n\nevent: x').bytes.toString())
  t.same(events, [])
  t.same(comments, ['ping', 'data: forged', '', 'event: x'])
})

t.test('property: any data round-trips through eventsource-parser (line ends normalised to LF)', async t => {
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), fc.option(fc.stringMatching(/^[^\s,]{1,20}$/)), (data, event) => {
    const text = encodeEventText({ data, event: event ?? undefined })
    const { events, errors } = parse(text)
    if (errors.length > 0) return false
    if (events.length !== 1) return false
    const got = events[0]!
    return got.data === data.replace(/\r\n|\r/g, '\n') && (event === null || event === '' ? got.event === undefined || got.event === event : got.event === event)
  }), { numRuns: 2000 })
  t.pass('2000 random strings round-tripped')
})

t.test('property: no input can forge a second event or another field', async t => {
  const hostile = fc.string({ unit: fc.constantFrom('\n', '\r', ':', ' ', 'data', 'event', 'id', 'retry', 'x', '\u0000', '\u2028', '\uFEFF'), maxLength: 60 })
  fc.assert(fc.property(hostile, fc.option(hostile), fc.option(hostile), (data, event, id) => {
    let text: string
    try {
      text = encodeEventText({ data, event: event ?? undefined, id: id ?? undefined })
    } catch (err) {
      // Refusing is fine only for the fields that may not hold line breaks.
      return err instanceof TypeError && ((event !== null && eventNameProblem(event) !== undefined) || (id !== null && /[\r\n\0]/.test(id)))
    }
    const { events, retries, errors } = parse(text)
    if (errors.length > 0 || retries.length > 0 || events.length !== 1) return false
    const got = events[0]!
    if (got.data !== data.replace(/\r\n|\r/g, '\n')) return false
    if (id !== null && got.id !== id) return false
    if (id === null && got.id !== undefined) return false
    if (event !== null && event !== '' && got.event !== event) return false
    if (event === null && got.event !== undefined) return false
    return true
  }), { numRuns: 3000 })
  t.pass('3000 hostile inputs produced exactly one event with exactly the given fields')
})

t.test('hostile Last-Event-ID values are dropped', async t => {
  t.equal(sanitizeLastEventId('123'), '123')
  t.equal(sanitizeLastEventId(['9', '8']), '9')
  t.equal(sanitizeLastEventId(''), undefined)
  t.equal(sanitizeLastEventId('x'.repeat(257)), undefined)
  t.equal(sanitizeLastEventId('x'.repeat(256)), 'x'.repeat(256))
  t.equal(sanitizeLastEventId('12\u0000'), undefined)
  t.equal(sanitizeLastEventId('12\r\nSet-Cookie: a=b'), undefined)
  t.equal(sanitizeLastEventId('\u001b[31m'), undefined)
  t.equal(sanitizeLastEventId(undefined), undefined)
})
