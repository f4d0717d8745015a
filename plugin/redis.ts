/**
 * `fastify-htmx-sse/redis`: the Redis transport, for several instances that
 * share topics, ids and history (see ./transports/redis.ts). The factory is
 * the way in; its class is the transport's own.
 */
export { redisTransport, type RedisTransportOptions } from './transports/redis.js'
