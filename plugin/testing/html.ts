/**
 * Just enough of an HTML reader for the testing helpers: the elements of a
 * fragment or page with their attributes and where each one's content
 * starts and ends. It reads markup as @kitajs/html renders it (every
 * element closed, or void); it is not a browser's parser, and does not need
 * to be: the helpers read what this package and the app rendered.
 */

export interface Element {
  /** Lower-case tag name. */
  readonly name: string
  /** Attributes by lower-case name, values with character references decoded. */
  readonly attrs: ReadonlyMap<string, string>
  /** Source spans of the attributes, by lower-case name: [start, end). */
  readonly spans: ReadonlyMap<string, readonly [number, number]>
  /** Offsets in the source: the open tag [start, openEnd), the content [openEnd, closeStart), the whole element [start, end). */
  readonly start: number
  readonly openEnd: number
  closeStart: number
  end: number
  readonly parent: Element | undefined
}

const VOID = new Set(['area', 'base', 'br', 'col', 'embed', 'hr', 'img', 'input', 'link', 'meta', 'source', 'track', 'wbr'])
const RAW_TEXT = new Set(['script', 'style', 'textarea', 'title'])
const NAMED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' }

/** Decodes the character references an attribute value may carry. */
export function decodeEntities (value: string): string {
  return value.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (ref: string, body: string) => {
    if (body[0] === '#') {
      const code = body[1] === 'x' || body[1] === 'X' ? parseInt(body.slice(2), 16) : parseInt(body.slice(1), 10)
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : ref
    }
    return NAMED[body.toLowerCase()] ?? ref
  })
}

const ATTR = /\s*([^\s"'<>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/y

/** Every element of `html`, in document order. */
export function elements (html: string): Element[] {
  const all: Element[] = []
  const open: Element[] = []
  const close = (element: Element, closeStart: number, end: number): void => {
    element.closeStart = closeStart
    element.end = end
  }
  let at = 0
  while (at < html.length) {
    const lt = html.indexOf('<', at)
    if (lt < 0) break
    if (html.startsWith('<!--', lt)) {
      const endComment = html.indexOf('-->', lt + 4)
      at = endComment < 0 ? html.length : endComment + 3
      continue
    }
    const endTag = /^<\/([A-Za-z][^\s/>]*)[^>]*>/.exec(html.slice(lt, lt + 256))
    if (endTag !== null) {
      const name = endTag[1]!.toLowerCase()
      const index = open.findLastIndex(e => e.name === name)
      if (index >= 0) {
        // Elements left open inside it end where it ends.
        for (const inner of open.splice(index)) close(inner, lt, lt + endTag[0].length)
      }
      at = lt + endTag[0].length
      continue
    }
    const startTag = /^<([A-Za-z][^\s/>]*)/.exec(html.slice(lt, lt + 256))
    if (startTag === null || html[lt + 1] === '!' || html[lt + 1] === '?') {
      const gt = html.indexOf('>', lt + 1)
      at = gt < 0 ? html.length : gt + 1
      continue
    }
    const name = startTag[1]!.toLowerCase()
    const attrs = new Map<string, string>()
    const spans = new Map<string, readonly [number, number]>()
    let p = lt + startTag[0].length
    for (;;) {
      ATTR.lastIndex = p
      const m = ATTR.exec(html)
      if (m === null) break
      const key = m[1]!.toLowerCase()
      if (!attrs.has(key)) {
        attrs.set(key, decodeEntities(m[2] ?? m[3] ?? m[4] ?? ''))
        spans.set(key, [p, p + m[0].length])
      }
      p += m[0].length
    }
    const gt = html.indexOf('>', p)
    const openEnd = gt < 0 ? html.length : gt + 1
    const selfClosing = VOID.has(name) || html[openEnd - 2] === '/'
    const element: Element = { name, attrs, spans, start: lt, openEnd, closeStart: openEnd, end: openEnd, parent: open.at(-1) }
    all.push(element)
    at = openEnd
    if (selfClosing) continue
    if (RAW_TEXT.has(name)) {
      const closeAt = html.toLowerCase().indexOf(`</${name}`, openEnd)
      const closeEnd = closeAt < 0 ? html.length : html.indexOf('>', closeAt) + 1 || html.length
      close(element, closeAt < 0 ? html.length : closeAt, closeEnd)
      at = closeEnd
      continue
    }
    open.push(element)
  }
  for (const element of open) close(element, html.length, html.length)
  return all
}
