/**
 * Reads Prometheus' text exposition format as served over HTTP: every sample
 * by its series (`name` or `name{label="value",…}` as written), so a test
 * compares a scrape with what its clients received.
 */
import { request } from './sse-client.js'

export interface Scrape {
  status: number
  contentType: string | undefined
  text: string
  /** The value of one series; undefined when the scrape does not have it. */
  value: (series: string) => number | undefined
  /** Every series whose name (before any label) is `name`. */
  series: (name: string) => Map<string, number>
}

export function parseExposition (text: string): Map<string, number> {
  const samples = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const space = line.lastIndexOf(' ')
    samples.set(line.slice(0, space), Number(line.slice(space + 1)))
  }
  return samples
}

export async function scrape (url: string): Promise<Scrape> {
  const res = await request(url)
  const samples = parseExposition(res.body)
  return {
    status: res.status,
    contentType: res.headers['content-type'],
    text: res.body,
    value: series => samples.get(series),
    series: name => new Map([...samples].filter(([s]) => s === name || s.startsWith(`${name}{`)))
  }
}
