import t from 'tap'
import { existsSync } from 'node:fs'
import { isAbsolute } from 'node:path'
import { Layout, LogLine, MessageCard, MessageChunk, MetricCard, NotificationItem, ProgressBar, RunDetail, RunStatusBadge, styles } from '../views/index.js'
import { AgentError, AgentStatus, ToolResult, ToolUseCard } from '../views/agent.js'
import { ChatForm, ChatRoom } from '../views/chat.js'
import { CoreBars, Gauge, Sparkline, metricStatus, sparklinePoints } from '../views/metrics.js'
import { LogTail, LogTailEntry, logSlotId } from '../views/logs.js'
import { NotificationFeed } from '../views/notifications.js'
import { ProgressContainer, ResultBanner } from '../views/progress.js'
import { assetFiles } from '../views/layout.js'
import { render, attr, count } from './helpers/html.js'

t.test('Layout: doctype, local htmx + sse scripts in order, inline styles, no CDN, no inline handlers', async (t) => {
  const html = await render(<Layout title='Dash' resumeScript='/sse/resume.js' head={<meta name='x' content='y' />}>body</Layout>)
  t.ok(html.startsWith('<!doctype html><html lang="en"><head>'))
  const scripts = [...html.matchAll(/<script src="([^"]+)"><\/script>/g)].map((m) => m[1])
  t.same(scripts, ['/assets/htmx.min.js', '/sse/resume.js', '/assets/sse.js'], 'resume script sits between htmx and sse.js')
  t.match(html, '<title>Dash</title>')
  t.match(html, '<meta name="x" content="y"/>')
  t.match(html, `<style>${styles}</style>`)
  t.match(html, '<body>body</body></html>')
  t.notMatch(html, /https?:\/\//, 'no CDN')
  t.notMatch(html, /\son[a-z]+=/, 'no inline event handlers')
  const custom = await render(<Layout title='x' assetsPrefix='/static/' nonce='abc' />)
  t.match(custom, '<script src="/static/htmx.min.js" nonce="abc"></script>')
  t.throws(() => Layout({ title: 'x', assetsPrefix: 'javascript:' }), { message: /assetsPrefix/ })
  t.throws(() => Layout({ title: 'x', resumeScript: 'data:text/javascript,alert(1)' }), { message: /resumeScript/ })
  t.match(await render(Layout({ title: 'x', children: Promise.resolve('async') })), /^<!doctype html>.*async/s)
})

t.test('styles: light/dark, grid, status colours', async (t) => {
  t.match(styles, 'prefers-color-scheme:dark')
  t.match(styles, 'grid-template-columns:repeat(auto-fill')
  for (const s of ['ok', 'warn', 'crit']) t.match(styles, `.status-${s}`)
  t.notMatch(styles, /<\/style/i)
})

t.test('assetFiles resolves htmx and the SSE extension from node_modules', async (t) => {
  const files = assetFiles()
  t.same(Object.keys(files).sort(), ['htmx.min.js', 'htmx4/htmx.min.js', 'htmx4/hx-sse.js', 'sse.js'], 'both majors by default (the asset route serves every page)')
  for (const file of Object.values(files)) {
    t.ok(isAbsolute(file) && existsSync(file), file)
  }
  t.match(files['htmx.min.js'], /htmx\.org[\\/]dist[\\/]htmx\.min\.js$/)
  t.match(files['sse.js'], /htmx-ext-sse[\\/]dist[\\/]sse\.js$/)
  t.match(files['htmx4/htmx.min.js'], /htmx\.org-4[\\/]dist[\\/]htmx\.min\.js$/)
  t.match(files['htmx4/hx-sse.js'], /htmx\.org-4[\\/]dist[\\/]ext[\\/]hx-sse\.js$/)
  t.same(Object.keys(assetFiles(2)).sort(), ['htmx.min.js', 'sse.js'])
  t.same(Object.keys(assetFiles(4)).sort(), ['htmx4/htmx.min.js', 'htmx4/hx-sse.js'])
  const v4 = (await import('node:fs')).readFileSync(files['htmx4/htmx.min.js']!, 'utf8')
  t.match(v4, /version="4\.0\./, 'htmx 4.0.x')
})

t.test('metricStatus and MetricCard status classes', async (t) => {
  const th = { warn: 70, crit: 90 }
  t.equal(metricStatus(10, th), 'ok')
  t.equal(metricStatus(70, th), 'warn')
  t.equal(metricStatus(95, th), 'crit')
  t.equal(metricStatus(NaN, th), 'unknown')
  t.equal(metricStatus(5), 'ok')
  const low = { warn: 20, crit: 10 } // free disk: lower is worse
  t.equal(metricStatus(50, low), 'ok')
  t.equal(metricStatus(15, low), 'warn')
  t.equal(metricStatus(5, low), 'crit')
  const html = await render(<MetricCard id='cpu' label='CPU' value={93.456} unit='%' thresholds={th} history={[1, 2, 3]} detail='8 cores' />)
  t.equal(attr(html, 'id'), 'cpu')
  t.equal(attr(html, 'class'), 'card metric status-crit')
  t.match(html, '<span class="value">93.5</span><span class="unit">%</span>')
  t.match(html, '<div class="detail">8 cores</div>')
  t.match(html, /<svg class="sparkline"[^>]*role="img"[^>]*><polyline points="[^"]+"><\/polyline><\/svg>/)
  const plain = await render(<MetricCard id='m' label='Mem' value={NaN} precision={0} />)
  t.match(plain, 'status-unknown')
  t.match(plain, '<span class="value">—</span>')
  t.notMatch(plain, /<svg|class="unit"|class="detail"/)
})

t.test('Sparkline: scaled points, 0/1 samples, NaN, limit', async (t) => {
  t.equal(sparklinePoints([]), '')
  t.equal(sparklinePoints([NaN, Infinity]), '')
  t.equal(sparklinePoints([5], { width: 100, height: 20 }), '0,10 100,10')
  t.equal(sparklinePoints([0, 10], { width: 100, height: 20 }), '0,20 100,0')
  t.equal(sparklinePoints([0, NaN, 10], { width: 100, height: 20 }), '0,20 100,0')
  t.equal(sparklinePoints([3, 3, 3], { width: 100, height: 20 }), '0,10 50,10 100,10')
  t.equal(sparklinePoints([0, 50, 200], { width: 100, height: 20, min: 0, max: 100 }), '0,20 50,10 100,0', 'fixed range clamps')
  t.equal(sparklinePoints([9, 9, 0, 10], { width: 10, height: 10, limit: 2 }), '0,10 10,0')
  t.equal(await render(<Sparkline values={[]} />), '<svg class="sparkline" viewBox="0 0 120 32" preserveAspectRatio="none" role="img" aria-label="trend"></svg>')
})

t.test('Gauge and CoreBars', async (t) => {
  const g = await render(<Gauge label='Load' value={150} thresholds={{ warn: 70, crit: 90 }} unit='%' />)
  t.match(g, '<meter min="0" max="100" value="100" low="70" high="90" optimum="0"></meter>')
  t.match(g, 'status-crit')
  const free = await render(<Gauge label='Free' value={50} thresholds={{ warn: 20, crit: 10 }} />)
  t.match(free, 'optimum="100"')
  const bars = await render(<CoreBars id='cores' cores={[10, 80, 95, -5, NaN]} />)
  t.equal(count(bars, /<li /), 5)
  t.match(bars, /<li class="ok" title="core 0: 10%"><span class="bar" style="height:10%"><\/span><\/li>/)
  t.match(bars, /<li class="warn"[^>]*><span class="bar" style="height:80%">/)
  t.match(bars, /<li class="crit"[^>]*><span class="bar" style="height:95%">/)
  t.match(bars, /style="height:0%"/)
  t.match(bars, 'aria-label="CPU load per core"')
})

t.test('Notifications: item, feed live region, sse target variant', async (t) => {
  const at = Date.UTC(2024, 0, 2, 3, 4, 5)
  const item = await render(<NotificationItem id='n1' level='warning' text='Disk almost full' at={at} />)
  t.equal(item, '<li id="n1" class="note note-warning" data-level="warning"><span class="level">warning</span><time datetime="2024-01-02T03:04:05.000Z">03:04:05</time><span class="text">Disk almost full</span></li>')
  const feed = await render(<NotificationFeed items={[{ id: 'n1', level: 'info', text: 'a', at: new Date(at) }]} />)
  t.match(feed, /^<ol id="notifications" class="feed" aria-live="polite" aria-label="Notifications"><li id="n1"/)
  const live = await render(<NotificationFeed id='feed' event='notification' />)
  t.equal(live, '<ol id="feed" class="feed" sse-swap="notification" hx-swap="afterbegin" aria-live="polite"></ol>')
  t.throws(() => NotificationFeed({ id: 'bad id' }), { message: /^id:/ })
  const safeHistoryItem = await render(<NotificationItem id='n0' level='warning' text='from history' at={at} />)
  const mixed = await render(<NotificationFeed id='feed' event='notification' items={[{ id: 'n1', level: 'info', text: 'new', at }]}>{safeHistoryItem}</NotificationFeed>)
  t.ok(mixed.indexOf('id="n1"') < mixed.indexOf('id="n0"'), 'items first, then pre-rendered history (newest first)')
  t.match(mixed, /^<ol[^>]* sse-swap="notification"[^>]*>/)
  t.match(await render(<NotificationItem id='n' level='info' text='x' at={NaN} />), '<time datetime="">--:--:--</time>')
})

t.test('Progress: ARIA progressbar, clamping, container, banner', async (t) => {
  const html = await render(<ProgressBar id='job-1' value={42.4} label='Import' />)
  const bar = /<div class="progress"[^>]*>/
  t.equal(attr(html, 'role', bar), 'progressbar')
  t.equal(attr(html, 'aria-valuenow', bar), '42')
  t.equal(attr(html, 'aria-valuemin', bar), '0')
  t.equal(attr(html, 'aria-valuemax', bar), '100')
  t.equal(attr(html, 'aria-label', bar), 'Import')
  t.match(html, 'style="width:42%"')
  t.match(html, '<span class="pct">42%</span>')
  t.equal(attr(await render(<ProgressBar value={250} label='x' />), 'aria-valuenow', bar), '100')
  t.equal(attr(await render(<ProgressBar value={-3} label='x' />), 'aria-valuenow', bar), '0')
  t.equal(attr(await render(<ProgressBar value={NaN} label='x' />), 'aria-valuenow', bar), '0')
  const c = await render(<ProgressContainer title='Jobs' event='jobs' swap='beforeend'>x</ProgressContainer>)
  t.match(c, '<h2>Jobs</h2><div id="progress" class="progress-list" sse-swap="jobs" hx-swap="beforeend">x</div>')
  t.match(await render(<ProgressContainer id='p'>x</ProgressContainer>), '<div id="p" class="progress-list">x</div>')
  t.match(await render(<ResultBanner outcome='success' text='Done' />), /class="banner banner-success" role="status"/)
  t.match(await render(<ResultBanner outcome='error' text='Boom' />), /role="alert"/)
  t.match(await render(<ResultBanner outcome='cancelled' text='Stopped' />), /banner-cancelled/)
})

t.test('Chat: message card, room appends and stays pinned to newest without JS, form', async (t) => {
  const msg = await render(<MessageCard id='m1' nick='ann' text='hi' at={0} />)
  t.equal(msg, '<li id="m1" class="msg"><span class="nick">ann</span><time datetime="1970-01-01T00:00:00.000Z">00:00:00</time><p class="text">hi</p></li>')
  const room = await render(<ChatRoom messages={[{ id: 'm1', nick: 'a', text: 'b', at: 0 }]} form={<ChatForm action='/chat' />} />)
  t.match(room, /<div class="chat-scroll"><ol id="chat-messages" class="chat-messages" aria-live="polite"><li id="m1"[^]*<\/ol><\/div><form id="chat-form"/, 'a plain list (messages arrive out of band), the form under it')
  const htmx2 = await render(<ChatRoom event='chat_message' />)
  t.match(htmx2, '<ol id="chat-messages" class="chat-messages" sse-swap="chat_message" hx-swap="beforeend" aria-live="polite"></ol>', 'htmx 2 only: a named-event target')
  t.match(styles, /\.chat-scroll\{[^}]*flex-direction:column-reverse/)
  t.match(room, /<form id="chat-form"/)
  t.notMatch(room, /<script|\son[a-z]+=/)
  const form = await render(<ChatForm action='/chat?room=1&x=2' nick='bob' />)
  t.equal(attr(form, 'hx-post'), '/chat?room=1&x=2')
  t.equal(attr(form, 'action'), '/chat?room=1&x=2')
  t.equal(attr(form, 'hx-swap'), 'outerHTML')
  t.equal(attr(form, 'method'), 'post')
  t.equal(attr(form, 'value', /<input name="nick"[^>]*>/), 'bob')
  t.throws(() => ChatForm({ action: 'javascript:alert(1)' }), { message: /^action:/ })
})

t.test('Agent: chunk, tool card pending, OOB tool result, status, error', async (t) => {
  t.equal(await render(<MessageChunk text='Hel' />), '<span class="chunk">Hel</span>')
  const card = await render(<ToolUseCard id='tool-1' name='search' input={{ q: 'cats' }} />)
  t.match(card, /^<div id="tool-1" class="tool">/)
  t.match(card, '<span id="tool-1-status" class="badge badge-pending" role="status">pending</span>')
  t.match(card, '<div id="tool-1-result" class="tool-result" aria-busy="true"></div>')
  t.match(card, '&#34;q&#34;: &#34;cats&#34;')
  const result = await render(<ToolResult id='tool-1' output='3 results' />)
  t.equal(result, '<span id="tool-1-status" class="badge badge-ok" role="status" hx-swap-oob="true">done</span><div id="tool-1-result" class="tool-result" hx-swap-oob="true"><pre>3 results</pre></div>')
  const failed = await render(<ToolResult id='tool-1' output={{ error: 'x' }} isError />)
  t.match(failed, 'class="badge badge-error" role="status" hx-swap-oob="true">error</span>', 'the badge stays a live region after the swap')
  t.match(failed, 'class="tool-result error" hx-swap-oob="true"')
  t.throws(() => ToolUseCard({ id: 'a b', name: 'x', input: 1 }), { message: /^id:/ })
  const circular: Record<string, unknown> = {}
  circular.self = circular
  t.match(await render(<ToolUseCard id='t' name='x' input={circular} />), '[object Object]')
  t.equal(await render(<AgentStatus state='thinking' />), '<p id="agent-status" class="agent-status state-thinking" role="status" data-state="thinking"><span>thinking</span></p>')
  t.match(await render(<AgentStatus id='s2' state='tool' text='Calling search' />), '<span>Calling search</span>')
  const err = await render(<AgentError message='Rate limited' detail='retry in 5s' />)
  t.match(err, /class="card agent-error" role="alert"><strong>Rate limited<\/strong><pre>retry in 5s<\/pre>/)
})

t.test('Logs: bounded slots, OOB outerHTML entry, order by seq, sink', async (t) => {
  t.equal(await render(<LogLine level='warn' time={0} msg='m' />), '<div class="log-line log-warn"><time datetime="1970-01-01T00:00:00.000Z">00:00:00</time><span class="level">warn</span><span class="msg">m</span></div>')
  const lines = Array.from({ length: 12 }, (_, seq) => ({ seq, level: 'info' as const, time: 0, msg: `line ${seq}` }))
  const tail = await render(<LogTail size={5} lines={lines} event='log' title='App log' />)
  t.equal(count(tail, /<li /), 5, 'exactly N slot elements')
  for (let i = 0; i < 5; i++) t.match(tail, `<li id="log-slot-${i}" class="log-slot"`)
  t.match(tail, /<ol id="log" class="log-tail" data-size="5"/)
  for (const seq of [7, 8, 9, 10, 11]) t.match(tail, `<li id="log-slot-${seq % 5}" class="log-slot" style="order:${seq}" data-seq="${seq}">`)
  t.notMatch(tail, /line [0-6]</, 'older lines dropped')
  t.match(tail, '<div class="sse-sink" hidden style="display:none" aria-hidden="true" sse-swap="log" hx-swap="none"></div>')
  const empty = await render(<LogTail id='jobs-log' size={2} />)
  t.match(empty, '<li id="jobs-log-slot-0" class="log-slot"></li><li id="jobs-log-slot-1" class="log-slot"></li>')
  t.notMatch(empty, /sse-sink/)
  const entry = await render(<LogTailEntry size={5} line={{ seq: 12, level: 'error', time: 0, msg: 'x' }} />)
  t.match(entry, /^<li id="log-slot-2" class="log-slot" hx-swap-oob="outerHTML" style="order:12" data-seq="12"><div class="log-line log-error">/)
  t.equal(logSlotId('log', 50, 123), 'log-slot-23')
  t.throws(() => logSlotId('log', 0, 1), { message: /^size:/ })
  t.throws(() => logSlotId('log', 5, -1), { message: /^seq:/ })
  t.throws(() => logSlotId('log', 5, 1.5), { message: /^seq:/ })
  t.throws(() => LogTail({ id: 'x y' }), { message: /^id:/ })
  t.match(styles, /\.log-tail\{[^}]*display:flex;flex-direction:column/)
})

t.test('RunDetail: live wiring only while running, in the htmx dialect of the page', async (t) => {
  const live = await render(<RunDetail run={{ id: 'r1', status: 'running', startedAt: 0 }} streamUrl='/runs/r1/stream' lastEventId='9'>step 1</RunDetail>)
  t.match(live, /^<section id="run-r1" class="card run" data-status="running">/)
  t.match(live, '<div id="run-r1-body" class="run-body">step 1</div>')
  t.match(live, '<div hidden hx-ext="sse" sse-connect="/runs/r1/stream?lastEventId=9" sse-swap="message" hx-swap="none" sse-close="done"></div></section>')
  t.match(live, '<span id="run-r1-status" class="badge badge-running" role="status">running</span>')
  t.match(live, 'started <time datetime="1970-01-01T00:00:00.000Z">')
  const four = await render(<RunDetail htmx={4} run={{ id: 'r2', status: 'running' }} streamUrl='/s' closeOn='end' resetUrl='/_sse/refresh' />)
  t.match(four, '<div hidden data-sse-connect hx-sse:connect="/s" hx-swap="none" hx-sse:close="end">')
  t.notMatch(four, /sse-connect=|hx-ext/)
  const oob = await render(<RunDetail oob run={{ id: 'r3', status: 'done' }} streamUrl='/s' />)
  t.match(oob, /^<section id="run-r3" class="card run" data-status="done" hx-swap-oob="true">/)
  for (const status of ['done', 'failed', 'cancelled'] as const) {
    const html = await render(<RunDetail run={{ id: 'r1', status, title: 'Nightly', finishedAt: 0 }} streamUrl='/runs/r1/stream'>final</RunDetail>)
    t.notMatch(html, /hx-ext|sse-connect|sse-swap|sse-close|hx-swap|hx-sse/, `${status}: static`)
    t.match(html, `<section id="run-r1" class="card run" data-status="${status}">`)
    t.match(html, `badge-${status}`)
    t.match(html, '<div id="run-r1-body" class="run-body">final</div>')
    t.match(html, '<h2>Nightly</h2>')
  }
  t.equal(await render(<RunStatusBadge runId='r1' status='done' oob />), '<span id="run-r1-status" class="badge badge-done" role="status" hx-swap-oob="true">done</span>')
  t.throws(() => RunDetail({ run: { id: 'a b', status: 'done' }, streamUrl: '/s' }), TypeError)
  t.throws(() => RunDetail({ run: { id: 'r', status: 'running' }, streamUrl: 'javascript:x' }), { message: /^url:/ })
})
