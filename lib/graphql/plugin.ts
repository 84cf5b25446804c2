// GraphQL at /graphql (mercurius), GraphiQL at /graphiql, subscriptions over WebSocket fed by
// PostgreSQL NOTIFY so that every process publishes what the delivering process did.
import type { FastifyInstance } from 'fastify'
import mercurius from 'mercurius'
import { CHANNELS } from '../db/listener.js'
import { errors } from '../errors.js'
import { checkAdminSecret } from '../http/auth.js'
import { costRule } from './cost.js'
import { graphiqlRoutes } from './graphiql.js'
import { loaders, resolvers, TOPICS } from './resolvers.js'
import { schema } from './schema.js'

// GraphiQL's own introspection query is 7 deep; real queries here rarely pass 5
const QUERY_DEPTH = 10

interface GqlError { message: string, path?: unknown, locations?: unknown, extensions?: Record<string, unknown>, originalError?: any }

/** The same codes and messages as REST: { message, extensions: { code, statusCode } }. */
function formatError (err: GqlError, log: FastifyInstance['log']): GqlError {
  const orig = err.originalError
  if (orig?.statusCode !== undefined && orig.statusCode < 500 && typeof orig.code === 'string') {
    return { message: orig.message, locations: err.locations, path: err.path, extensions: { code: orig.code, statusCode: orig.statusCode } }
  }
  if (orig === undefined || orig === null || orig.name === 'GraphQLError') {
    // a query that does not validate against the schema: the client's mistake, said as graphql-js says it
    return { message: err.message, locations: err.locations, path: err.path, extensions: { code: 'HOOKPOST_ERR_BAD_REQUEST', statusCode: 400 } }
  }
  const status = orig.statusCode === 503 ? 503 : 500
  if (status === 500) log.error({ err: orig }, 'graphql resolver failed')
  const e = status === 503 ? orig : new errors.Internal()
  return { message: e.message, path: err.path, extensions: { code: e.code, statusCode: status } }
}

export async function graphqlPlugin (app: FastifyInstance): Promise<void> {
  const secret = app.config.adminSecret

  // the header rule of REST, for HTTP; the WebSocket upgrade is let through and checked at connection_init,
  // since browsers cannot set headers on a WebSocket. GraphiQL's page is static and stays open.
  app.addHook('onRequest', async (req) => {
    // the matched route, not the raw URL: /%67raphql is /graphql to the router
    if (secret === null || req.routeOptions.url !== '/graphql') return
    // only a real upgrade (Node saw Connection: upgrade) skips the header; a stray Upgrade header does not
    if ((req.raw as { upgrade?: boolean }).upgrade === true) return
    checkAdminSecret(secret, req.headers['x-platformatic-admin-secret'])
  })

  // while this process has WebSocket clients it says so to the deliverer (a shared advisory lock),
  // which publishes delivery events only then: they cost a NOTIFY per flush when nobody listens
  let connections = 0
  const connected = (): { hookpostCounted: true } => {
    if (connections++ === 0) app.listener.setSubscribed(true)
    return { hookpostCounted: true }
  }

  await app.register(mercurius, {
    schema,
    resolvers: resolvers as any,
    loaders: loaders as any,
    // our own /graphiql (graphiql.ts) serves its assets locally instead of from a CDN
    graphiql: false,
    path: '/graphql',
    queryDepth: QUERY_DEPTH,
    validationRules: [costRule as any],
    context: () => ({ app }),
    errorFormatter: (result, ctx) => {
      // mercurius wraps schema-validation failures in one error carrying the graphql-js errors: unwrap them
      const flat = (result.errors ?? []).flatMap((e: any) => Array.isArray(e.originalError?.errors) ? e.originalError.errors : [e])
      const formatted = flat.map(e => formatError(e as GqlError, app.log))
      // a whole-request failure (bad query, auth) gets its status; resolver errors ride a 200, as GraphQL does
      const status = result.data === undefined || result.data === null ? Math.max(...formatted.map(f => Number(f.extensions?.statusCode ?? 400))) : 200
      void ctx
      return { statusCode: status, response: { data: result.data ?? null, errors: formatted } as any }
    },
    subscription: {
      context: () => ({ app }),
      // counted on an accepted connection_init only, so a refused client cannot unbalance the count
      onDisconnect: (ctx) => {
        if ((ctx as { hookpostCounted?: boolean }).hookpostCounted === true && --connections === 0) app.listener.setSubscribed(false)
      },
      onConnect: ({ payload }: { payload?: Record<string, any> }) => {
        if (secret === null) return connected()
        const given = payload?.['x-platformatic-admin-secret'] ?? payload?.headers?.['x-platformatic-admin-secret'] ?? payload?.['X-PLATFORMATIC-ADMIN-SECRET']
        try {
          checkAdminSecret(secret, given)
          return connected()
        } catch {
          return false
        }
      }
    }
  })

  await app.register(graphiqlRoutes)

  // NOTIFY hookpost_events -> mercurius pubsub, in every process
  app.listener.on('notification', (channel: string, payload: string | undefined) => {
    if (channel !== CHANNELS.events || payload === undefined) return
    let events: unknown[][]
    try {
      events = JSON.parse(payload)
    } catch {
      return
    }
    for (const [messageId, queueId, attempt, ok, statusCode, willRetry] of events) {
      const event = { messageId, queueId, attempt, statusCode, willRetry: willRetry === 1 }
      const [topic, field] = ok === 1 ? [TOPICS.delivered, 'messageDelivered'] : [TOPICS.failed, 'messageFailed']
      void app.graphql.pubsub.publish({ topic, payload: { [field]: event } })
    }
  })
}
