/**
 * The client files a live page needs, served by the plugin from node_modules
 * (never a CDN): htmx 2.0.x + htmx-ext-sse, and htmx 4.0.x + its `hx-sse`
 * extension. Read once, kept in memory (a few hundred KiB), answered with an
 * ETag so a browser revalidates cheaply. Only these files are reachable.
 */
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import type { FastifyInstance } from 'fastify'
import type { HtmxMajor } from './live-token.js'

/** The files of each major, by the name they are served under, as absolute paths in node_modules. */
export function assetFiles (htmx?: HtmxMajor): Record<string, string> {
  const require = createRequire(import.meta.url)
  const two = {
    'htmx.min.js': require.resolve('htmx.org/dist/htmx.min.js'),
    'sse.js': require.resolve('htmx-ext-sse/dist/sse.js')
  }
  const four = {
    'htmx4/htmx.min.js': require.resolve('htmx.org-4/dist/htmx.min.js'),
    'htmx4/hx-sse.js': require.resolve('htmx.org-4/dist/ext/hx-sse.js')
  }
  if (htmx === undefined) return { ...two, ...four }
  return htmx === 2 ? two : four
}

/** The scripts of a major, in load order, as paths under the assets path (the resume script goes between htmx 2 and its extension). */
export function assetScripts (htmx: HtmxMajor): [htmx: string, extension: string] {
  return htmx === 2 ? ['htmx.min.js', 'sse.js'] : ['htmx4/htmx.min.js', 'htmx4/hx-sse.js']
}

export async function serveAssets (app: FastifyInstance, path: string, maxAgeSeconds = 3600): Promise<void> {
  for (const [name, file] of Object.entries(assetFiles())) {
    const body = await readFile(file)
    const etag = `"${createHash('sha1').update(body).digest('base64url')}"`
    app.get(`${path}/${name}`, { logLevel: 'warn' }, (request, reply) => {
      reply.header('etag', etag).header('cache-control', `public, max-age=${maxAgeSeconds}`)
      if (request.headers['if-none-match'] === etag) return reply.code(304).send()
      return reply.type('text/javascript; charset=utf-8').send(body)
    })
  }
}
