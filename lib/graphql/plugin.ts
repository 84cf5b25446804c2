// GraphQL at /graphql (mercurius), GraphiQL at /graphiql, subscriptions over WebSocket fed by
// PostgreSQL NOTIFY so that every process publishes what the delivering process did.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import websocket from '@fastify/websocket'
import mercurius from 'mercurius'
import { ADMIN_SECRET_HEADER, checkAdminSecret } from '../api/auth.js'
import { publicError } from '../api/public-error.js'
import { CHANNELS } from '../db/channels.js'
import { decodeOutcomes } from '../delivery/events.js'
import { errors } from '../errors.js'
import { costRuleFor, parseDocument, validateDocument } from './cost.js'
import { graphiqlRoutes } from './graphiql.js'
import { entityTopic, loaders, resolvers, TOPICS } from './resolvers.js'
import { schema } from './schema.js'
import { SubscriberCount } from './subscribers.js'
import { guardWebSocket } from './ws-guard.js'
import { upgradeAllowed } from './upgrade-gate.js'

/** the one path that answers GraphQL over HTTP and serves its subscriptions over WebSocket */
export const GRAPHQL_PATH = '/graphql'

interface GqlError {
  message: string
  path?: unknown
  locations?: unknown
  extensions?: Record<string, unknown>
  originalError?: any
}

/** The same codes and messages as REST (lib/api/public-error.ts): { message, extensions: { code, statusCode } }. */
function formatError (err: GqlError, log: FastifyInstance['log'], req: FastifyRequest | undefined): GqlError {
  const orig = err.originalError
  if (orig === undefined || orig === null || orig.name === 'GraphQLError') {
    // a query that does not validate against the schema: the client's mistake, said as graphql-js says it
    const bad = new errors.HOOKPOST_ERR_BAD_REQUEST(err.message)
    const extensions = { code: bad.code, statusCode: bad.statusCode }
    return { message: err.message, locations: err.locations, path: err.path, extensions }
  }
  const facts = { contentType: req?.headers['content-type'], bodyLimit: req?.routeOptions.bodyLimit }
  const { error, internal } = publicError(orig, facts)
  if (internal) log.error({ err: orig }, 'graphql request failed')
  const extensions = { code: error.code, statusCode: error.statusCode }
  return { message: error.message, locations: err.locations, path: err.path, extensions }
}

const WS_MAX_PAYLOAD_BYTES = 16 * 1024
// each live subscription runs on every delivery event; a dashboard needs a handful
const MAX_SUBSCRIPTIONS_PER_SOCKET = 100

export async function graphqlPlugin (app: FastifyInstance): Promise<void> {
  const secret = app.config.adminSecret

  // the header rule of REST, for HTTP; the WebSocket handshake is let through and checked at
  // connection_init, since browsers cannot set headers on a WebSocket. GraphiQL's page stays open.
  app.addHook('onRequest', async (req) => {
    // the matched route, not the raw URL: /%67raphql is /graphql to the router
    if (req.routeOptions.url !== GRAPHQL_PATH) return
    // a HEAD would run the operation (mutations too: mercurius refuses those on GET only) and its
    // content-length would tell the result
    if (req.method === 'HEAD') {
      throw new errors.HOOKPOST_ERR_METHOD_NOT_ALLOWED(`HEAD ${GRAPHQL_PATH} runs nothing: use GET for queries or POST`)
    }
    if (secret === null) return
    // only the WebSocket handshake that the upgrade gate (app.ts) let through skips the header
    if ((req.raw as { upgrade?: boolean }).upgrade === true && upgradeAllowed(req.raw, GRAPHQL_PATH)) return
    checkAdminSecret(secret, req.headers[ADMIN_SECRET_HEADER])
  })

  // only GraphQL text, of at most MAX_QUERY_TOKENS tokens, reaches mercurius: it would take an AST
  // (as an object, or as JSON when the text does not parse), which no limit of ours could trust
  app.addHook('preValidation', async (req) => {
    if (req.routeOptions.url !== GRAPHQL_PATH) return
    const body = req.body as { query?: unknown } | string | undefined
    const source = typeof body === 'string' ? body : body?.query ?? (req.query as { query?: unknown }).query
    if (source === undefined) return
    if (typeof source !== 'string') throw new errors.HOOKPOST_ERR_BAD_REQUEST('query must be a string of GraphQL')
    const parsed = parseDocument(source)
    if ('problem' in parsed) throw new errors.HOOKPOST_ERR_BAD_REQUEST(parsed.problem)
  })

  // while this process has live subscriptions it says so to the deliverer (a shared advisory lock),
  // which publishes delivery events only then: they cost a NOTIFY per flush when nobody listens
  const subscribers = new SubscriberCount((any) => app.listener.setSubscribed(any))

  // registered here, not by mercurius (which would, in a scope of its own), so that its server is ours
  // to watch; mercurius uses the one it finds. Only subscriptions travel over it (no queries or
  // mutations), a few hundred bytes each: 16 KiB bounds what mercurius parses before any hook runs
  await app.register(websocket, { options: { maxPayload: WS_MAX_PAYLOAD_BYTES } })
  app.websocketServer.on('connection', (ws) => guardWebSocket(ws, {
    initTimeoutMs: app.config.server.wsInitTimeoutMs, maxSubscriptions: MAX_SUBSCRIPTIONS_PER_SOCKET
  }))
  // on close each client is sent a close frame; one that stops reading would hold its socket, and the
  // HTTP server's close with it, for ws's own 30 s close handshake: past the shutdown grace it is cut
  let cut: NodeJS.Timeout | undefined
  app.addHook('preClose', async () => {
    cut = setTimeout(() => { for (const ws of app.websocketServer.clients) ws.terminate() },
      app.config.hooks.shutdownGraceMs).unref()
  })
  app.addHook('onClose', async () => { clearTimeout(cut) })

  await app.register(mercurius, {
    schema,
    resolvers: resolvers as any,
    loaders: loaders as any,
    // our own /graphiql (graphiql.ts) serves its assets locally instead of from a CDN
    graphiql: false,
    path: GRAPHQL_PATH,
    // depth, cost and root fields are bounded by costRule, linear in the document (mercurius's
    // queryDepth would also count introspection's `ofType` chains and refuse GraphiQL's schema query).
    // Made per request, so that an `inputs` list or a `limit` passed as a variable counts as what it is;
    // a rule that depends on the variables rules out mercurius's cache of validated queries
    cache: false,
    validationRules: ({ variables }: { variables?: Record<string, unknown> }) => [costRuleFor(variables) as any],
    context: () => ({ app }),
    errorFormatter: (result, ctx) => {
      // mercurius wraps schema-validation failures in one error carrying the graphql-js errors: unwrap them
      const flat = (result.errors ?? []).flatMap((e: any) =>
        Array.isArray(e.originalError?.errors) ? e.originalError.errors : [e])
      const req = (ctx as { reply?: { request?: FastifyRequest } } | undefined)?.reply?.request
      const formatted = flat.map(e => formatError(e as GqlError, app.log, req))
      // a whole-request failure (bad query, auth) gets its status; resolver errors ride a 200, as GraphQL does
      const status = result.data === undefined || result.data === null
        ? Math.max(...formatted.map(f => Number(f.extensions?.statusCode ?? 400)))
        : 200
      return { statusCode: status, response: { data: result.data ?? null, errors: formatted } as any }
    },
    subscription: {
      // subscriptions, not connections, are counted (lib/graphql/subscribers.ts): a subscription
      // starts only after an accepted connection_init and always ends, however often a client inits
      context: () => ({ app, subscribers }),
      onConnect: ({ payload }: { payload?: Record<string, any> }) => {
        if (secret === null) return true
        const upper = ADMIN_SECRET_HEADER.toUpperCase()
        const given = payload?.[ADMIN_SECRET_HEADER] ?? payload?.headers?.[ADMIN_SECRET_HEADER] ?? payload?.[upper]
        try {
          checkAdminSecret(secret, given)
          return true
        } catch {
          return false
        }
      }
    }
  })

  // mercurius runs a subscription without validating it: our limits (and the spec's rules) are applied
  // here, as they are to queries over HTTP; an AST sent as an object is judged the same way
  app.graphql.addHook('preSubscriptionExecution', async (schema, document) => {
    const problems = validateDocument(schema, document)
    if (problems.length > 0) throw new errors.HOOKPOST_ERR_BAD_REQUEST(problems.map(p => p.message).join('; '))
  })

  await app.register(graphiqlRoutes)

  // rows saved or deleted through this process's API -> the entity subscriptions (queueSaved, …)
  app.entityChanges.on('change', ({ entity, kind, row }) => {
    const { topic, field } = entityTopic(entity, kind)
    app.graphql.pubsub.publish({ topic, payload: { [field]: kind === 'saved' ? row : { id: row.id } } })
  })

  // NOTIFY hookpost_events -> mercurius pubsub, in every process
  app.listener.on('notification', (channel: string, payload: string | undefined) => {
    if (channel !== CHANNELS.events || payload === undefined) return
    for (const { messageId, queueId, attempt, ok, statusCode, willRetry } of decodeOutcomes(payload)) {
      const event = { messageId, queueId, attempt, statusCode, willRetry }
      const [topic, field] = ok ? [TOPICS.delivered, 'messageDelivered'] : [TOPICS.failed, 'messageFailed']
      // returns nothing: mercurius' PubSub hands the event to its emitter synchronously
      app.graphql.pubsub.publish({ topic, payload: { [field]: event } })
    }
  })
}
