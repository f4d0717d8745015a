import t from 'tap'
import { SseConnect } from '../views/index.js'
import { Htmx2SseConnect, Oob, oobContent, SseSink, SseSwap, sseCloseAttr, sseConnectUrl } from '../views/sse.js'
import { render, attr } from './helpers/html.js'

t.test('SseConnect htmx 2: a hidden sink with hx-ext, sse-connect with lastEventId, sse-swap="message", hx-swap none', async (t) => {
  const html = await render(<SseConnect url='/stream?x=1' lastEventId='42' id='live' />)
  t.match(html, /^<div id="live" hidden hx-ext="sse" sse-connect="[^"]+" sse-swap="message" hx-swap="none"><\/div>$/)
  const url = attr(html, 'sse-connect')!
  const q = new URL(url, 'http://h').searchParams
  t.equal(new URL(url, 'http://h').pathname, '/stream')
  t.equal(q.get('x'), '1')
  t.equal(q.get('topics'), null, 'the route picks the topics')
  t.equal(q.get('lastEventId'), '42')
  t.match(html, /sse-connect="[^"]*&amp;lastEventId=/, '& is escaped in the attribute')
  t.equal(attr(html, 'sse-close'), undefined)
  t.equal(await render(<SseConnect htmx={2} url='/s' />), await render(<SseConnect url='/s' />), 'htmx 2 is the default')
})

t.test('SseConnect htmx 4: hx-sse:connect and hx-sse:close, no hx-ext, no sse-* attributes; always the reload trigger', async (t) => {
  const html = await render(<SseConnect htmx={4} url='/stream' lastEventId='7' closeOn='done' id='page' />)
  t.equal(html, '<div id="page" hidden data-sse-connect hx-sse:connect="/stream?lastEventId=7" hx-swap="none" hx-sse:close="done">' +
    '<div hidden hx-get="/_sse/refresh" hx-trigger="reset from:&#34;closest [data-sse-connect]&#34;" hx-swap="none"></div></div>', 'the plugin\'s default refreshPath when none is given')
  t.notMatch(html, /hx-ext|sse-connect=|sse-swap|sse-close/)
  const reset = await render(<SseConnect htmx={4} url='/s' resetUrl='/moved/refresh' />)
  t.match(reset, '<div hidden hx-get="/moved/refresh" hx-trigger="reset from:&#34;closest [data-sse-connect]&#34;" hx-swap="none"></div>')
  t.throws(() => SseConnect({ htmx: 3 as unknown as 4, url: '/s' }), { code: 'HTMX_SSE_INVALID_PROP', message: /htmx version must be 2 or 4/ })
  t.throws(() => SseConnect({ htmx: 4, url: '/s', resetUrl: 'javascript:x' }), { message: /resetUrl/ })
  t.throws(() => SseConnect({ url: '/s', children: 'x' as never }), { message: /no children/ })
})

t.test('Htmx2SseConnect: the htmx-2-only wrapping form for sse-swap targets', async (t) => {
  const html = await render(<Htmx2SseConnect url='/s' lastEventId='3' id='live' class='grid' closeOn='done'><SseSwap event='cpu'>x</SseSwap></Htmx2SseConnect>)
  t.equal(html, '<div id="live" class="grid" hx-ext="sse" sse-connect="/s?lastEventId=3" sse-close="done"><div sse-swap="cpu" hx-swap="innerHTML">x</div></div>')
})

t.test('SseConnect: closeOn emits sse-close; hostile lastEventId stays inside the query', async (t) => {
  const html = await render(<SseConnect url='https://example.com/s' lastEventId={'"><script>x'} closeOn='done' />)
  t.equal(attr(html, 'sse-close'), 'done')
  const url = attr(html, 'sse-connect')!
  t.equal(new URL(url).searchParams.get('lastEventId'), '"><script>x')
  t.notMatch(html, /<script/)
})

t.test('SseConnect: forced props are not emitted', async (t) => {
  const props = { url: '/s', 'sse-swap': 'x', 'hx-swap': 'outerHTML', class: 'x' } as unknown as Parameters<typeof SseConnect>[0]
  const html = await render(SseConnect(props))
  t.notMatch(html, /sse-swap="x"|outerHTML|class/)
})

t.test('SseConnect: URL and close-event validation', async (t) => {
  t.throws(() => SseConnect({ url: 'javascript:alert(1)' }), { code: 'HTMX_SSE_INVALID_PROP', message: /url/ })
  t.throws(() => SseConnect({ url: ' JaVaScRiPt:alert(1)' }), { code: 'HTMX_SSE_INVALID_PROP' })
  t.throws(() => SseConnect({ url: 'java\tscript:alert(1)' }), { code: 'HTMX_SSE_INVALID_PROP' })
  t.throws(() => SseConnect({ url: 'data:text/html,x' }), { code: 'HTMX_SSE_INVALID_PROP' })
  t.throws(() => SseConnect({ url: '/s', closeOn: 'a b' }), { message: /closeOn/ })
  // entity-encoded scheme cannot be decoded by the browser: & is escaped
  const html = await render(<SseConnect url={'&#106;avascript:alert(1)'} />)
  t.equal(attr(html, 'sse-connect'), '&#106;avascript:alert(1)')
})

t.test('sseConnectUrl keeps hash and replaces existing params', async (t) => {
  t.equal(sseConnectUrl('/s?lastEventId=old#frag', { lastEventId: '7' }), '/s?lastEventId=7#frag')
  t.equal(sseConnectUrl('/s', {}), '/s')
  t.equal(sseConnectUrl('/s', { lastEventId: '' }), '/s')
  t.same(sseCloseAttr('done'), { 'sse-close': 'done' })
  t.throws(() => sseCloseAttr('a\nb'), { code: 'HTMX_SSE_INVALID_PROP' })
})

t.test('SseSwap: sse-swap + explicit hx-swap, tag, validation', async (t) => {
  const html = await render(<SseSwap event='cpu_update' id='cpu' class={['card', false, 'x']}>initial</SseSwap>)
  t.equal(html, '<div id="cpu" class="card x" sse-swap="cpu_update" hx-swap="innerHTML">initial</div>')
  const list = await render(<SseSwap event={['a', 'b']} swap='beforeend' tag='ol' />)
  t.match(list, /^<ol sse-swap="a,b" hx-swap="beforeend"><\/ol>$/)
  for (const bad of ['a,b', 'a b', 'a\nb', 'a\rb', '']) {
    t.throws(() => SseSwap({ event: bad }), { code: 'HTMX_SSE_INVALID_PROP', message: /^event:/ }, JSON.stringify(bad))
  }
})

t.test('SseSink: hidden, hx-swap none, comma-joined events', async (t) => {
  const html = await render(<SseSink events={['status', 'done']} id='sink' />)
  t.match(html, /^<div [^>]*><\/div>$/)
  t.equal(attr(html, 'hidden'), '')
  t.equal(attr(html, 'style'), 'display:none')
  t.equal(attr(html, 'sse-swap'), 'status,done')
  t.equal(attr(html, 'hx-swap'), 'none')
  t.equal(attr(html, 'id'), 'sink')
  t.equal(attr(await render(<SseSink events='log' />), 'sse-swap'), 'log')
  t.throws(() => SseSink({ events: [] as unknown as [string] }), { message: /events/ })
})

t.test('Oob: id required, swap styles, table rows as tbody/tr (first in the event)', async (t) => {
  t.equal(await render(<Oob id='cpu'>x</Oob>), '<div id="cpu" hx-swap-oob="true">x</div>')
  t.equal(await render(<Oob id='cpu' swap='outerHTML' tag='section' class='card'>x</Oob>), '<section id="cpu" class="card" hx-swap-oob="outerHTML">x</section>')
  t.equal(await render(<Oob id='feed' swap='beforeend'><li>x</li></Oob>), '<div hx-swap-oob="beforeend:#feed"><li>x</li></div>')
  t.equal(await render(<Oob id='feed' swap='afterbegin'>x</Oob>), '<div hx-swap-oob="afterbegin:#feed">x</div>')
  t.equal(await render(<Oob id='box' swap='innerHTML'>x</Oob>), '<div hx-swap-oob="innerHTML:#box">x</div>')
  t.equal(
    await render(<Oob id='rows' swap='beforeend' asTableRows><tr><td>1</td></tr></Oob>),
    '<tbody hx-swap-oob="beforeend:#rows"><tr><td>1</td></tr></tbody>'
  )
  t.equal(await render(<Oob id='row-1' asTableRows><td>1</td></Oob>), '<tr id="row-1" hx-swap-oob="true"><td>1</td></tr>')
  t.equal(oobContent(await render(<Oob id='feed' swap='afterbegin'><li>x</li></Oob>)), '<li>x</li>')
  t.equal(oobContent('<div id="a" hx-swap-oob="true">x</div>'), '<div id="a" hx-swap-oob="true">x</div>', 'outer fragments unchanged')
  for (const bad of ['', '1abc', 'a b', 'a"b', 'x,#y', 'a.b']) {
    t.throws(() => Oob({ id: bad }), { code: 'HTMX_SSE_INVALID_PROP', message: /^id:/ }, JSON.stringify(bad))
  }
})
