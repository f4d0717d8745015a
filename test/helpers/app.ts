import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import htmxSse, { type HtmxSseOptions } from '../../plugin/index.js'

export interface TestApp {
  app: FastifyInstance
  url: string
}

/** A Fastify app with the plugin, listening on a free loopback port. */
export async function startApp (
  options: HtmxSseOptions = {},
  routes: (app: FastifyInstance) => void | Promise<void> = () => {},
  fastifyOptions: FastifyServerOptions = {}
): Promise<TestApp> {
  const app = Fastify({ logger: false, ...fastifyOptions })
  await app.register(htmxSse, options)
  await routes(app)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no address')
  return { app, url: `http://127.0.0.1:${address.port}` }
}

/** Active handles of the kinds that would keep the process (or a closed app) alive. */
export function activeTimers (): number {
  const resources = (process as unknown as { getActiveResourcesInfo: () => string[] }).getActiveResourcesInfo()
  return resources.filter(r => r === 'Timeout' || r === 'Immediate').length
}
