import t from 'tap'
import { Append, Items, Prepend, Remove, Replace, Update } from '../views/index.js'
import { MAX_LIST_LIMIT } from '../views/fragments.js'
import { FRAGMENT_SINK_ATTR } from '../plugin/fragment-sink.js'
import { decode, render } from './helpers/html.js'

const SINK = `<div hx-swap-oob="beforeend: head"><template ${FRAGMENT_SINK_ATTR}></template></div>`

t.test('Prepend: insert-if-absent, replace in place, and the limit delete with its sink', async t => {
  t.equal(
    await render(<Prepend to='orders' id='order-7' tag='li'><b>7</b></Prepend>),
    '<div hx-swap-oob="afterbegin: #orders:not(:has(> #order-7)), #orders > #order-7"><li id="order-7"><b>7</b></li></div>' +
    '<li id="order-7" hx-swap-oob="outerHTML: #orders > #order-7"><b>7</b></li>'
  )
  t.equal(
    await render(<Prepend to='orders' id='order-7' limit={20}>7</Prepend>),
    '<div hx-swap-oob="afterbegin: #orders:not(:has(> #order-7)), #orders > #order-7"><div id="order-7">7</div></div>' +
    '<div id="order-7" hx-swap-oob="outerHTML: #orders > #order-7">7</div>' +
    SINK +
    '<div hx-swap-oob="delete: #orders > :nth-child(n+20 of :not(#order-7)), head > template[data-sse-sink]"></div>',
    'tag defaults to div; the limit keeps 19 others besides the item, counted without it'
  )
})

t.test('Append: beforeend, and the limit drops from the start', async t => {
  t.equal(
    await render(<Append to='log' id='line-3' tag='li' class={['line', false, 'warn']} limit={2}>three</Append>),
    '<div hx-swap-oob="beforeend: #log:not(:has(> #line-3)), #log > #line-3"><li id="line-3" class="line warn">three</li></div>' +
    '<li id="line-3" class="line warn" hx-swap-oob="outerHTML: #log > #line-3">three</li>' +
    SINK +
    '<div hx-swap-oob="delete: #log > :nth-last-child(n+2 of :not(#line-3)), head > template[data-sse-sink]"></div>'
  )
})

t.test('rows: tbody wrappers, so the parser keeps the <tr>s of every part', async t => {
  t.equal(
    await render(<Prepend to='rows' id='row-1' tag='tr' limit={5}><td>1</td></Prepend>),
    '<tbody hx-swap-oob="afterbegin: #rows:not(:has(> #row-1)), #rows > #row-1"><tr id="row-1"><td>1</td></tr></tbody>' +
    '<tbody><tr id="row-1" hx-swap-oob="outerHTML: #rows > #row-1"><td>1</td></tr></tbody>' +
    `<tbody hx-swap-oob="beforeend: head"><template ${FRAGMENT_SINK_ATTR}></template></tbody>` +
    '<tbody hx-swap-oob="delete: #rows > :nth-child(n+5 of :not(#row-1)), head > template[data-sse-sink]"></tbody>'
  )
  t.equal(await render(<Update id='rows' content='rows'><tr><td>x</td></tr></Update>), '<tbody hx-swap-oob="innerHTML: #rows"><tr><td>x</td></tr></tbody>')
  t.equal(await render(<Update id='row-1' content='cells'><td>x</td></Update>), '<tr hx-swap-oob="innerHTML: #row-1"><td>x</td></tr>')
  t.equal(await render(<Replace id='row-1' tag='tr'><td>x</td></Replace>), '<tr id="row-1" hx-swap-oob="outerHTML: #row-1"><td>x</td></tr>')
})

t.test('Replace, Update, Remove', async t => {
  t.equal(await render(<Replace id='cpu' class='card'>42%</Replace>), '<div id="cpu" class="card" hx-swap-oob="outerHTML: #cpu">42%</div>')
  t.equal(await render(<Update id='cpu'><span>42%</span></Update>), '<div hx-swap-oob="innerHTML: #cpu"><span>42%</span></div>')
  t.equal(await render(<Remove id='order-7' />), SINK + '<div hx-swap-oob="delete: #order-7, head > template[data-sse-sink]"></div>')
})

t.test('async children render to the same markup', async t => {
  const later = Promise.resolve('<b>7</b>')
  const html = Prepend({ to: 'orders', id: 'order-7', limit: 3, children: later })
  t.type(html, Promise, 'async stays async')
  t.equal(await render(html), await render(<Prepend to='orders' id='order-7' limit={3}><b>7</b></Prepend>))
})

/**
 * Both clients must read the same swap style and selector from every value:
 * htmx 2 `oobSwap` splits at the first ':', htmx 4 `#createOOBTask` with
 * /^(\S+):(.+)/ (greedy: the last ':' before the first whitespace).
 */
t.test('every hx-swap-oob value splits the same way in htmx 2 and htmx 4', async t => {
  const html = [
    await render(<Prepend to='a' id='b' tag='tr' limit={3}>x</Prepend>),
    await render(<Append to='a' id='b' limit={1}>x</Append>),
    await render(<Replace id='a'>x</Replace>),
    await render(<Update id='a'>x</Update>),
    await render(<Remove id='a' />)
  ].join('')
  const values = [...html.matchAll(/hx-swap-oob="([^"]*)"/g)].map(m => decode(m[1]!))
  t.equal(values.length, 12)
  for (const value of values) {
    const two = { style: value.slice(0, value.indexOf(':')), selector: value.slice(value.indexOf(':') + 1).trim() }
    const m = /^(\S+):(.+)/.exec(value)
    const four = { style: m?.[1], selector: m?.[2]?.trim() }
    t.same(four, two, value)
    t.ok(['afterbegin', 'beforeend', 'outerHTML', 'innerHTML', 'delete'].includes(two.style), `${two.style} is a style both know`)
  }
})

t.test('validation: clear TypeErrors naming the prop', async t => {
  for (const id of ['', '7', 'a b', '#a', 'a"b', '"><script>x</script>', 'a,b', 'a:b', 'a>b']) {
    t.throws(() => Prepend({ to: 'list', id }), { code: 'HTMX_SSE_INVALID_PROP', message: /^id: .* is not a valid target id/ }, `id ${JSON.stringify(id)}`)
    t.throws(() => Append({ to: id, id: 'x' }), { code: 'HTMX_SSE_INVALID_PROP', message: /^to: / }, `to ${JSON.stringify(id)}`)
    t.throws(() => Replace({ id }), { code: 'HTMX_SSE_INVALID_PROP', message: /^id: / })
    t.throws(() => Update({ id }), { code: 'HTMX_SSE_INVALID_PROP', message: /^id: / })
    t.throws(() => Remove({ id }), { code: 'HTMX_SSE_INVALID_PROP', message: /^id: / })
  }
  t.throws(() => Prepend({ to: 'x', id: 'x' }), { code: 'HTMX_SSE_INVALID_PROP', message: /must differ from the list id/ })
  t.throws(() => Prepend({ to: 'x', id: 42 as unknown as string }), { code: 'HTMX_SSE_INVALID_PROP', message: /^id: 42 is not a valid target id/ })
  for (const limit of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, MAX_LIST_LIMIT + 1, '3' as unknown as number, null as unknown as number]) {
    t.throws(() => Prepend({ to: 'l', id: 'i', limit }), { code: 'HTMX_SSE_INVALID_PROP', message: /^limit: .* is not an integer from 1 to 10000$/ }, `limit ${String(limit)}`)
  }
  t.doesNotThrow(() => Append({ to: 'l', id: 'i', limit: MAX_LIST_LIMIT }))
  t.throws(() => Prepend({ to: 'l', id: 'i', tag: 'script' as 'div' }), { code: 'HTMX_SSE_INVALID_PROP', message: /^tag: "script" is not one of div, li, tr/ })
  t.throws(() => Replace({ id: 'i', tag: 'img' as 'div' }), { code: 'HTMX_SSE_INVALID_PROP', message: /^tag: / })
  t.throws(() => Update({ id: 'i', content: 'table' as 'rows' }), { code: 'HTMX_SSE_INVALID_PROP', message: /^content: "table" is not one of flow, rows, cells$/ })
  t.throws(() => Remove({ id: 'i', children: 'x' as never }), { code: 'HTMX_SSE_INVALID_PROP', message: /^Remove: no children$/ })
})

t.test('escaping: attribute values are escaped, children are trusted markup', async t => {
  const hostile = '"><script>alert(1)</script><x a="&amp;'
  const html = await render(<Prepend to='l' id='i' class={hostile}>{'<em>trusted</em>'}</Prepend>)
  t.notMatch(html, /<script/, 'no tag from a class value')
  t.equal(decode(/ class="([^"]*)"/.exec(html)![1]!), hostile, 'the class round-trips through the escaping')
  t.match(html, '<em>trusted</em>', 'children pass through as markup')
  const replaced = await render(<Replace id='r' class={hostile}>x</Replace>)
  t.notMatch(replaced, /<script|"><|&amp;"/, 'Replace escapes its class too')
})

t.test('Items: what Prepend/Append events put in a list, as the list shows it', async t => {
  const ev = async (el: JSX.Element) => ({ data: await el })
  const of = [await ev(<Prepend to='n' id='a' tag='li' limit={3}>A<b>x</b></Prepend>), { data: '<div id="x" hx-swap-oob="true">no</div>' }, await ev(<Prepend to='n' id='b' tag='li'>B</Prepend>), await ev(<Prepend to='n' id='a' tag='li'>A2</Prepend>)]
  t.equal(await <ul>{Items({ of })}</ul>, '<ul><li id="b">B</li><li id="a">A2</li></ul>')
  const rows = [await ev(<Append to='r' id='r1' tag='tr'><td>1</td></Append>), await ev(<Append to='r' id='r2' tag='tr'><td>2</td></Append>)]
  t.equal(Items({ of: rows }), '<tr id="r1"><td>1</td></tr><tr id="r2"><td>2</td></tr>')
})
