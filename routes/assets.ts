/**
 * The client files `Layout` asks for, served from node_modules (never a CDN)
 * by `@fastify/static`, with ETag, Last-Modified, 304s, gzip where the
 * package ships a `.gz`, and `Cache-Control: public, max-age=3600`. One line:
 *
 *   await app.register(clientAssetsRoutes, { prefix: '/assets' })   // Layout's default assetsPrefix
 *
 * Only the files of `assetFiles()` are served: one explicit route per file,
 * no wildcard, so nothing else of those packages' folders is reachable.
 *
 * Prefix scheme: htmx 2's files sit at the prefix itself (`/assets/htmx.min.js`,
 * `/assets/sse.js`, what `Layout` has always asked for). htmx 4's files, whose
 * names overlap (`htmx.min.js`, `ext/hx-sse.js`), are to go beside them under
 * `htmx4/` (`/assets/htmx4/htmx.min.js`), so one app can serve both majors.
 */
import { basename, dirname } from 'node:path'
import fastifyStatic from '@fastify/static'
import type { FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import { assetFiles } from '../views/layout.js'

export interface ClientAssetsOptions {
  /** `Cache-Control` max-age, ms. Default 3 600 000 (one hour: the URLs carry no version). */
  maxAgeMs?: number
}

const clientAssets: FastifyPluginAsync<ClientAssetsOptions> = async (app, options) => {
  // `reply.sendFile` only (serve: false registers no route), unless the app already has @fastify/static.
  if (!app.hasReplyDecorator('sendFile')) await app.register(fastifyStatic, { serve: false, preCompressed: true })
  const maxAge = options.maxAgeMs ?? 3_600_000
  for (const [name, file] of Object.entries(assetFiles())) {
    app.get(`/${name}`, { logLevel: 'warn' }, (_request, reply) => reply.sendFile(basename(file), dirname(file), { maxAge }))
  }
}

/** htmx 2 and htmx-ext-sse for `Layout`, under the registration's `prefix` (use `Layout`'s `assetsPrefix`, default '/assets'). */
export const clientAssetsRoutes = fp(clientAssets, { fastify: '5.x', name: 'fastify-htmx-sse/routes/assets', encapsulate: true })
