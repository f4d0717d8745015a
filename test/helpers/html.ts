/** Tiny HTML helpers for view tests (no DOM in Node): render, decode, read one attribute, count matches. */
export const render = async (el: JSX.Element): Promise<string> => await el

export const decode = (s: string): string =>
  s.replace(/&#34;|&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&')

/** Decoded value of attribute `name` on the first tag matching `tagRe` (undefined: absent). */
export const attr = (html: string, name: string, tagRe = /<[a-z][^>]*>/): string | undefined => {
  const tag = tagRe.exec(html)?.[0] ?? ''
  const m = new RegExp(`\\s${name}(?:="([^"]*)")?(?=[\\s/>])`).exec(tag)
  return m ? decode(m[1] ?? '') : undefined
}

export const count = (html: string, re: RegExp): number => html.match(new RegExp(re.source, 'g'))?.length ?? 0
