import type { FastifyInstance } from 'fastify'
import { isMigrated } from '../lib/db/migrate.js'

const DB_CHECK_TIMEOUT_MS = 2000

async function databaseAnswers (app: FastifyInstance): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([
      app.pool.query('SELECT 1'),
      new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error('timeout')), DB_CHECK_TIMEOUT_MS) })
    ])
    return true
  } catch {
    return false
  } finally {
    clearTimeout(timer)
  }
}

const reply = {
  type: 'object',
  properties: { status: { type: 'string' }, database: { type: 'string' }, migrations: { type: 'string' } }
}

export default async function healthRoutes (app: FastifyInstance): Promise<void> {
  // liveness: the process answers; a database outage is reported but is no reason to restart us
  app.get('/health', {
    schema: { tags: ['health'], summary: 'liveness', operationId: 'getHealth', response: { 200: reply } }
  }, async () => {
    return { status: 'ok', database: await databaseAnswers(app) ? 'up' : 'down' }
  })

  // readiness: the database answers and every migration is applied
  app.get('/ready', {
    schema: { tags: ['health'], summary: 'readiness', operationId: 'getReady', response: { 200: reply, 503: reply } }
  }, async (_req, res) => {
    const up = await databaseAnswers(app)
    const migrated = up && await isMigrated(app.pool).catch(() => false)
    res.code(up && migrated ? 200 : 503)
    return {
      status: up && migrated ? 'ready' : 'not ready',
      database: up ? 'up' : 'down',
      migrations: migrated ? 'applied' : 'pending'
    }
  })
}
