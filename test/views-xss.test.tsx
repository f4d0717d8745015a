/**
 * Every component rendered with hostile input must come out inert. The output is
 * tokenised the way a browser would read it (tags, double-quoted attributes, text):
 * a `<` in text or a `"` in an attribute that escaped escaping would produce an
 * unknown tag, an `on*` attribute or an unparseable token, and fail here.
 */
import t, { type Test } from 'tap'
import { Layout, LogLine, MessageCard, MessageChunk, MetricCard, NotificationItem, ProgressBar, RunDetail, SseConnect } from '../views/index.js'
import { AgentError, AgentStatus, ToolResult, ToolUseCard } from '../views/agent.js'
import { ChatForm, ChatRoom } from '../views/chat.js'
import { CoreBars, Gauge } from '../views/metrics.js'
import { LogTail, LogTailEntry } from '../views/logs.js'
import { NotificationFeed } from '../views/notifications.js'
import { Oob, SseSink, SseSwap } from '../views/sse.js'
import { ProgressContainer, ResultBanner } from '../views/progress.js'
import { render, decode } from './helpers/html.js'

interface Tag { name: string; attrs: Array<[string, string]> }

function tokenize (html: string): { tags: Tag[]; text: string } {
  const tags: Tag[] = []
  let text = ''
  let i = 0
  const tagRe = /<(\/?)([a-z][a-z0-9-]*)((?:\s+[^\s"'<>/=]+(?:="[^"]*")?)*)\s*\/?>/y
  while (i < html.length) {
    const lt = html.indexOf('<', i)
    if (lt === -1) { text += html.slice(i); break }
    text += html.slice(i, lt)
    if (html.startsWith('<!doctype html>', lt)) { i = lt + 15; continue }
    tagRe.lastIndex = lt
    const m = tagRe.exec(html)
    if (!m) throw new Error(`unparseable markup at ${lt}: ${html.slice(lt, lt + 60)}`)
    i = tagRe.lastIndex
    if (m[1]) continue
    const name = m[2]!
    const attrs: Array<[string, string]> = []
    for (const a of (m[3] ?? '').matchAll(/\s+([^\s"'<>/=]+)(?:="([^"]*)")?/g)) attrs.push([a[1]!, decode(a[2] ?? '')])
    tags.push({ name, attrs })
    if (name === 'style' || name === 'script') {
      const end = html.indexOf(`</${name}>`, i)
      if (end === -1) throw new Error(`unterminated <${name}>`)
      if (name === 'script' && end !== i) throw new Error('inline script content')
      i = end
    }
  }
  return { tags, text: decode(text) }
}

const ALLOWED_TAGS = new Set([
  'html', 'head', 'meta', 'title', 'style', 'body', 'div', 'span', 'section', 'article', 'header', 'h2', 'p', 'ol', 'ul',
  'li', 'time', 'svg', 'polyline', 'meter', 'label', 'form', 'input', 'button', 'pre', 'code', 'strong', 'template',
  'tbody', 'tr', 'td', 'b',
])
const URL_ATTRS = new Set(['href', 'src', 'action', 'hx-post', 'hx-get', 'sse-connect', 'hx-sse:connect', 'formaction'])
const SAFE_URL = /^(https?:|[^:]*$|[^:]*[/?#])/i

function assertInert (t: Test, html: string, label: string, allowScriptSrc = false): void {
  const { tags } = tokenize(html)
  for (const tag of tags) {
    if (tag.name === 'script') {
      t.ok(allowScriptSrc && tag.attrs.some(([n]) => n === 'src'), `${label}: only the Layout's external scripts`)
      continue
    }
    t.ok(ALLOWED_TAGS.has(tag.name), `${label}: unexpected <${tag.name}>`)
    for (const [name, value] of tag.attrs) {
      t.notOk(/^on/i.test(name), `${label}: event handler attribute ${name}`)
      // htmx 4 namespaces its attributes with ':' (hx-sse:connect, hx-status:422)
      t.ok(/^(?:[a-zA-Z][a-zA-Z0-9-]*|hx-[a-z0-9-]+:[a-z0-9-]+)$/.test(name), `${label}: odd attribute name ${name}`)
      if (URL_ATTRS.has(name)) t.match(value, SAFE_URL, `${label}: ${name} is http(s)/relative`)
      if (name === 'style') t.notMatch(value, /url\(|expression|javascript/i, `${label}: style`)
    }
  }
  if (!allowScriptSrc) t.notMatch(html, /<script/i, `${label}: no <script`)
  t.notMatch(html, /<img/i, `${label}: no <img`)
}

const HOSTILE = [
  '<script>alert(1)</script>',
  '"><img src=x onerror=alert(1)>',
  "'><svg onload=alert(1)>",
  '</textarea></style></title><script>alert(1)</script>',
  '&lt;script&gt;alert(1)&lt;/script&gt;',
  'javascript:alert(1)',
]

t.test('components render hostile text as inert text', async (t) => {
  for (const x of HOSTILE) {
    const cases: Array<[string, JSX.Element, boolean?]> = [
      ['Layout', <Layout title={x}>static</Layout>, true],
      ['MetricCard', <MetricCard id='cpu' label={x} value={1} unit={x} detail={x} history={[1, 2]} />],
      ['Gauge', <Gauge label={x} value={1} unit={x} />],
      ['CoreBars', <CoreBars cores={[1]} label={x} />],
      ['NotificationItem', <NotificationItem id={x} level='error' text={x} at={0} />],
      ['NotificationFeed', <NotificationFeed label={x} items={[{ id: x, level: 'info', text: x, at: 0 }]} />],
      ['ProgressBar', <ProgressBar id={x} value={1} label={x} />],
      ['ProgressContainer', <ProgressContainer title={x}></ProgressContainer>],
      ['ResultBanner', <ResultBanner id={x} outcome='error' text={x} />],
      ['MessageCard', <MessageCard id={x} nick={x} text={x} at={0} />],
      ['ChatRoom', <ChatRoom title={x} messages={[{ id: x, nick: x, text: x, at: 0 }]} />],
      ['ChatForm', <ChatForm action='/chat' id={x} nick={x} />],
      ['MessageChunk', <MessageChunk text={x} />],
      ['ToolUseCard', <ToolUseCard id='t1' name={x} input={{ [x]: x }} />],
      ['ToolUseCard string input', <ToolUseCard id='t1' name={x} input={x} />],
      ['ToolResult', <ToolResult id='t1' output={x} />],
      ['AgentStatus', <AgentStatus id={x} state='error' text={x} />],
      ['AgentError', <AgentError id={x} message={x} detail={x} />],
      ['LogLine', <LogLine level='info' time={0} msg={x} />],
      ['LogTail', <LogTail size={2} title={x} lines={[{ seq: 1, level: 'info', time: 0, msg: x }]} />],
      ['LogTailEntry', <LogTailEntry line={{ seq: 1, level: 'info', time: 0, msg: x }} />],
      ['RunDetail running', <RunDetail run={{ id: 'r1', status: 'running', title: x }} />],
      ['RunDetail done', <RunDetail run={{ id: 'r1', status: 'done', title: x }} />],
      ['SseConnect', <SseConnect url='/s' lastEventId={x} />],
      ['SseConnect htmx 4', <SseConnect htmx={4} url='/s' lastEventId={x} resetUrl='/r' />],
      ['SseSwap', <SseSwap event='e' id={x} class={x} />],
      ['SseSink', <SseSink events='e' id={x} />],
      ['Oob', <Oob id='target' class={x} />],
    ]
    for (const [label, el, allowScript] of cases) {
      const html = await render(el)
      assertInert(t, html, `${label} ${JSON.stringify(x)}`, allowScript === true)
    }
  }
})

t.test('hostile text survives as text (escaped, not dropped)', async (t) => {
  const x = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'
  for (const el of [<MessageCard id='m' nick='n' text={x} at={0} />, <LogLine level='info' time={0} msg={x} />, <MessageChunk text={x} />, <ResultBanner outcome='error' text={x} />]) {
    const html = await render(el)
    t.ok(tokenize(html).text.includes(x), 'decoded text equals the input')
    t.notMatch(html, /<script|<img/)
  }
  const attrHtml = await render(<ChatForm action='/c' nick={x} />)
  const nick = tokenize(attrHtml).tags.find((tag) => tag.name === 'input')?.attrs.find(([n]) => n === 'value')?.[1]
  t.equal(nick, x, 'attribute value round-trips without breaking out')
})

t.test('URL props reject non-http(s) schemes', async (t) => {
  const bad = ['javascript:alert(1)', 'JAVASCRIPT:alert(1)', 'java\nscript:alert(1)', ' javascript:alert(1)', 'data:text/html,<script>', 'vbscript:x', 'file:///etc/passwd', '']
  for (const url of bad) {
    t.throws(() => SseConnect({ url }), { code: 'HTMX_SSE_INVALID_PROP' }, `SseConnect ${JSON.stringify(url)}`)
    t.throws(() => ChatForm({ action: url }), { code: 'HTMX_SSE_INVALID_PROP' }, `ChatForm ${JSON.stringify(url)}`)
  }
  for (const url of ['/s', 's', './s', '../s', '?x=1', 'https://example.com/s', 'http://localhost:3000/s', '//cdn.example/s']) {
    const html = await render(<SseConnect url={url} />)
    assertInert(t, html, url)
  }
  // entity-encoded schemes are neutralised: & is escaped, so the browser never decodes them
  const html = await render(<SseConnect url={'&#x6A;avascript:alert(1)'} />)
  t.match(html, 'sse-connect="&amp;#x6A;avascript:alert(1)"')
})
