// GraphQL at /graphql (mercurius), GraphiQL at /graphiql, subscriptions over WebSocket fed by
// PostgreSQL NOTIFY so that every process publishes what the delivering process did.
import type { FastifyInstance } from 'fastify'
import { buildSchema } from 'graphql'
import mercurius from 'mercurius'
import { CHANNELS } from '../db/channels.js'
import { translateDbError } from '../db/pool.js'
import { decodeOutcomes } from '../delivery/events.js'
import { errors } from '../errors.js'
import { checkAdminSecret } from '../http/auth.js'
import { upgradeAllowed } from '../http/upgrade-gate.js'
import { costRule } from './cost.js'
import { graphiqlRoutes } from './graphiql.js'
import { loaders, resolvers, TOPICS } from './resolvers.js'
import { schema } from './schema.js'
import { SubscriberCount } from './subscribers.js'

/** the one path that answers GraphQL over HTTP and serves its subscriptions over WebSocket */
export const GRAPHQL_PATH = '/graphql'

interface GqlError { message: string, path?: unknown, locations?: unknown, extensions?: Record<string, unknown>, originalError?: any }

// root fields that write: a broken connection under one of them may have committed
const MUTATIONS = new Set(Object.keys(buildSchema(schema).getMutationType()?.getFields() ?? {}))

/** The same codes and messages as REST: { message, extensions: { code, statusCode } }. */
function formatError (err: GqlError, log: FastifyInstance['log']): GqlError {
  let orig = err.originalError
  if (orig !== undefined && orig !== null && orig.name !== 'GraphQLError') {
    // a database error a resolver let through: said as REST says it (a timeout is a 503, never a 500)
    const root = Array.isArray(err.path) ? err.path[0] : undefined
    orig = translateDbError(orig, { write: typeof root === 'string' && MUTATIONS.has(root) })
  }
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

  // the header rule of REST, for HTTP; the WebSocket handshake is let through and checked at
  // connection_init, since browsers cannot set headers on a WebSocket. GraphiQL's page stays open.
  app.addHook('onRequest', async (req) => {
    // the matched route, not the raw URL: /%67raphql is /graphql to the router
    if (req.routeOptions.url !== GRAPHQL_PATH) return
    // a HEAD would run the operation (mutations too: mercurius refuses those on GET only) and its
    // content-length would tell the result
    if (req.method === 'HEAD') throw new errors.MethodNotAllowed(`HEAD ${GRAPHQL_PATH} runs nothing: use GET for queries or POST`)
    if (secret === null) return
    // only the WebSocket handshake that the upgrade gate (app.ts) let through skips the header
    if ((req.raw as { upgrade?: boolean }).upgrade === true && upgradeAllowed(req.raw, GRAPHQL_PATH)) return
    checkAdminSecret(secret, req.headers['x-platformatic-admin-secret'])
  })

  // while this process has live subscriptions it says so to the deliverer (a shared advisory lock),
  // which publishes delivery events only then: they cost a NOTIFY per flush when nobody listens
  const subscribers = new SubscriberCount((any) => app.listener.setSubscribed(any))

  await app.register(mercurius, {
    schema,
    resolvers: resolvers as any,
    loaders: loaders as any,
    // our own /graphiql (graphiql.ts) serves its assets locally instead of from a CDN
    graphiql: false,
    path: GRAPHQL_PATH,
    // depth, cost and root fields are bounded by costRule, linear in the document (mercurius's
    // queryDepth would also count introspection's `ofType` chains and refuse GraphiQL's schema query)
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
      // subscriptions, not connections, are counted (lib/graphql/subscribers.ts): a subscription
      // starts only after an accepted connection_init and always ends, however often a client inits
      context: () => ({ app, subscribers }),
      onConnect: ({ payload }: { payload?: Record<string, any> }) => {
        if (secret === null) return true
        const given = payload?.['x-platformatic-admin-secret'] ?? payload?.headers?.['x-platformatic-admin-secret'] ?? payload?.['X-PLATFORMATIC-ADMIN-SECRET']
        try {
          checkAdminSecret(secret, given)
          return true
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
    for (const { messageId, queueId, attempt, ok, statusCode, willRetry } of decodeOutcomes(payload)) {
      const event = { messageId, queueId, attempt, statusCode, willRetry }
      const [topic, field] = ok ? [TOPICS.delivered, 'messageDelivered'] : [TOPICS.failed, 'messageFailed']
      void app.graphql.pubsub.publish({ topic, payload: { [field]: event } })
    }
  })
}
