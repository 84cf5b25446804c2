// build(config) -> FastifyInstance. Registers everything, never listens: the entry point does that.
import { EventEmitter } from 'node:events'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import fp from 'fastify-plugin'
import Fastify, { LogController, type FastifyInstance } from 'fastify'
import type { Pool } from 'pg'
import type { Logger } from 'pino'
import type { Config } from './config.js'
import { migrate } from './db/migrate.js'
import { hostname } from 'node:os'
import { randomBytes } from 'node:crypto'
import { CHANNELS } from './db/channels.js'
import { Listener } from './db/listener.js'
import { createPool } from './db/pool.js'
import type { Clock } from './delivery/clock.js'
import { holdWorkerLock } from './delivery/sql.js'
import { enginePlugin } from './engine.js'
import { EnqueueBatcher } from './store/enqueue-batcher.js'
import type { EntityChange } from './api/crud.js'
import { GRAPHQL_PATH, graphqlPlugin } from './graphql/plugin.js'
import { installUpgradeGate } from './graphql/upgrade-gate.js'
import { makeAuthHook } from './http/auth.js'
import { handleError, installErrorHandler } from './http/error-handler.js'
import { traceContextAtEnqueue } from './http/trace-context.js'
import { formatSchemaErrors, validatorCompiler } from './api/validate.js'
import { loggerOptions } from './logger.js'
import { VERSION } from './version.js'
import { ADMIN_SECRET_HEADER } from './api/auth.js'
import { metricsPlugin } from './metrics.js'
import { catalogueInDocument } from './http/openapi-catalogue.js'
import { dashboardPages } from './dashboard/pages.js'
import cronRoutes, { cronAliasRoutes } from '../routes/crons.js'
import dashboardRoutes from '../routes/dashboard.js'
import healthRoutes from '../routes/health.js'
import metricsRoutes from '../routes/metrics.js'
import messageRoutes from '../routes/messages.js'
import queueRoutes from '../routes/queues.js'
import eventRoutes from '../routes/events.js'
import eventTypeRoutes from '../routes/event-types.js'

declare module 'fastify' {
  interface FastifyInstance {
    pool: Pool
    config: Config
    /** the LISTEN connection every part of the process shares */
    listener: Listener
    /** this process, in claims (messages.locked_by) and logs */
    workerId: string
    /** POST /messages and saveMessage go through it: concurrent enqueues share one commit */
    enqueuer: EnqueueBatcher
    /** 'change': a row the API saved or deleted (lib/api/crud.ts EntityChange), for GraphQL's subscriptions */
    entityChanges: EventEmitter<{ change: [EntityChange] }>
  }
}

type OpenAPIDocument = Record<string, any> & { components?: Record<string, any> }

/**
 * The OpenAPI document with each titled schema (Queue, Message, Cron, Attempt: lib/api/resources.ts)
 * in components.schemas and referenced from where it was inline, as Platformatic DB's document has its
 * entities. Routes keep their schemas inline: validation and serialization are unchanged.
 */
function hoistTitledSchemas (doc: OpenAPIDocument): OpenAPIDocument {
  const schemas: Record<string, unknown> = doc.components?.schemas ?? {}
  const walk = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(walk)
    if (node === null || typeof node !== 'object') return node
    const o = node as Record<string, unknown>
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(o)) out[k] = walk(v)
    if (typeof o.title === 'string' && /^[A-Z]\w*$/.test(o.title) && o.type === 'object') {
      schemas[o.title] ??= out
      return { $ref: `#/components/schemas/${o.title}` }
    }
    return out
  }
  const paths = walk(doc.paths)
  return { ...doc, paths, components: { ...doc.components, schemas } }
}

export interface BuildOptions {
  /** a logger instance instead of one made from config */
  logger?: Logger
  /** the cron scheduler's time (tests: a fake clock makes a tick due without waiting for it) */
  cronClock?: Clock
}

export async function build (config: Config, opts: BuildOptions = {}): Promise<FastifyInstance> {
  if (config.db.connectionString === null) {
    throw new Error('build() needs a connection string: start the embedded PostgreSQL first (see lib/server.ts)')
  }
  const app: FastifyInstance = Fastify({
    ...(opts.logger !== undefined ? { loggerInstance: opts.logger } : { logger: loggerOptions(config) }),
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 200 },
    // bodies larger than 1 MiB are refused with 413 before they are read
    bodyLimit: 1024 * 1024,
    // a socket that trickles its headers or body is answered 408 and closed: without this (Fastify's
    // default is none) anyone could hold sockets, and SIGTERM, open for as long as they like
    requestTimeout: config.server.requestTimeoutMs,
    http: {
      headersTimeout: config.server.requestTimeoutMs,
      // how often Node looks for such sockets (its default, 30 s, would double the timeout)
      connectionsCheckingInterval: Math.min(1000, config.server.requestTimeoutMs / 2)
    },
    schemaErrorFormatter: formatSchemaErrors as any,
    // a malformed URL never reaches a route: it is answered as every other error is
    frameworkErrors: handleError,
    // per-request log lines only at debug: at thousands of enqueues a second they cost more than they tell
    logController: new LogController({ disableRequestLogging: !['debug', 'trace'].includes(config.server.logLevel) })
  }) as unknown as FastifyInstance
  // JSON bodies are validated as sent (no type coercion); querystrings and params as text (lib/api/validate.ts)
  app.setValidatorCompiler(validatorCompiler)

  const url = config.db.connectionString
  const pool = createPool(url, {
    max: config.db.poolSize, log: app.log, statementTimeoutMs: config.db.statementTimeoutMs
  })
  app.decorate('pool', pool)
  app.decorate('config', config)
  app.addHook('onClose', async () => { await pool.end() })

  const workerId = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`
  // the LISTEN connection also holds this process's worker lock: while it lives, our claims are live
  const listener = new Listener(url, Object.values(CHANNELS), app.log as unknown as Logger,
    async (c) => {
      const { rows } = await c.query(holdWorkerLock(workerId))
      // not ours yet (our previous session still holds it on the server): not connected until it is
      if (rows[0]?.ok !== true) throw new Error('worker lock still held by a previous session of this process')
    })
  app.decorate('listener', listener)
  app.decorate('workerId', workerId)
  app.addHook('onReady', async () => { await listener.start() })
  app.addHook('onClose', async () => { await listener.stop() })

  if (config.db.autoMigrate) {
    // its own connection, without the statement timeout: an index on a big table, or waiting for
    // another process's migration, may well take longer than any request should
    const once = createPool(url, { max: 1, log: app.log, statementTimeoutMs: 0, name: 'hookpost-migrate' })
    try {
      const applied = await migrate(once)
      if (applied.length > 0) app.log.info({ applied }, 'migrations applied')
    } finally {
      await once.end()
    }
  }

  installErrorHandler(app)
  // first, so that its request hook sees every route and app.metrics is there for the rest
  await app.register(fp(metricsPlugin))
  app.decorate('enqueuer', new EnqueueBatcher(pool, app.metrics.enqueuedByApi))
  app.decorate('entityChanges', new EventEmitter<{ change: [EntityChange] }>())

  await app.register(swagger, {
    openapi: {
      info: { title: 'hookpost', description: 'Webhook delivery on PostgreSQL', version: VERSION },
      components: {
        securitySchemes: { adminSecret: { type: 'apiKey', in: 'header', name: ADMIN_SECRET_HEADER.toUpperCase() } }
      },
      security: config.adminSecret !== null ? [{ adminSecret: [] }] : []
    },
    transformObject: (d) =>
      hoistTitledSchemas(('openapiObject' in d ? d.openapiObject : d.swaggerObject) as OpenAPIDocument)
  })
  await app.register(swaggerUi, { routePrefix: '/documentation', ...catalogueInDocument(pool, config.adminSecret) })
  await app.register(healthRoutes)
  await app.register(metricsRoutes)
  // the dashboard's pages hold no data: they ask for the secret, and send it to /dashboard/api
  await app.register(dashboardPages)

  if (config.adminSecret === null) {
    app.log.warn('PLT_ADMIN_SECRET is not set: the API is open to anyone who can reach this port')
  }

  // everything in this scope needs the admin secret when one is set
  await app.register(async function api (scope) {
    scope.addHook('onRequest', makeAuthHook(config.adminSecret))
    traceContextAtEnqueue(scope)
    await scope.register(queueRoutes, { prefix: '/queues' })
    await scope.register(messageRoutes, { prefix: '/messages' })
    await scope.register(cronRoutes, { prefix: '/crons' })
    await scope.register(cronAliasRoutes, { prefix: '/cron' })
    await scope.register(eventRoutes, { prefix: '/events' })
    await scope.register(eventTypeRoutes, { prefix: '/event-types' })
    await scope.register(dashboardRoutes, { prefix: '/dashboard' })
  })
  // GraphQL has its own auth hook: the WebSocket handshake is checked at connection_init instead.
  // Its endpoint documents itself (introspection, /graphiql): kept out of the REST document
  app.addHook('onRoute', (route) => {
    if (route.url === GRAPHQL_PATH) route.schema = { ...route.schema, hide: true }
  })
  await app.register(graphqlPlugin)
  // every upgrade passes the gate first: a WebSocket handshake to GRAPHQL_PATH, or a refusal and a closed socket
  let gate: { close: () => void } | undefined
  app.addHook('onReady', async () => { gate = installUpgradeGate(app.server, GRAPHQL_PATH) })
  app.addHook('preClose', async () => { gate?.close() })
  // close() waits for every open request; past the shutdown grace, the ones still open (a stalled
  // client, a slow upload) are cut so that SIGTERM always ends the process
  let cut: NodeJS.Timeout | undefined
  app.addHook('preClose', async () => {
    cut = setTimeout(() => app.server.closeAllConnections(), config.hooks.shutdownGraceMs).unref()
  })
  app.addHook('onClose', async () => { clearTimeout(cut) })

  await app.register(fp(enginePlugin), { cronClock: opts.cronClock })

  return app
}
