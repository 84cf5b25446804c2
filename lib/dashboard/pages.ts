// The operator dashboard's pages at /dashboard: plain HTML, CSS and ES modules from static/ beside this
// file, served from memory. No CDN and no build step, so it works offline; no data in them, so they are
// served without the admin secret (the page asks for it, and sends it as a header to /dashboard/api).
import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance, FastifyReply } from 'fastify'
import { errors } from '../errors.js'

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml'
}

// The page runs its own files only, and talks to this server only. Message bodies, headers and
// responses are shown as text (textContent), never as markup: the policy is the second fence.
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "img-src 'self' data:",
  "form-action 'none'", "base-uri 'none'", "frame-ancestors 'none'"
].join('; ')

// static/ sits beside this file; `npm run build` copies it next to the compiled one
const STATIC_DIR = fileURLToPath(new URL('./static/', import.meta.url))

/** Every file of static/, by name, read once. Exported for the size test. */
export function dashboardFiles (): Map<string, { body: Buffer, type: string }> {
  const files = new Map<string, { body: Buffer, type: string }>()
  for (const name of readdirSync(STATIC_DIR)) {
    const type = TYPES[name.slice(name.lastIndexOf('.'))]
    if (type !== undefined) files.set(name, { body: readFileSync(STATIC_DIR + name), type })
  }
  return files
}

function secured (reply: FastifyReply, type: string): FastifyReply {
  return reply
    .type(type)
    .header('content-security-policy', CONTENT_SECURITY_POLICY)
    .header('x-content-type-options', 'nosniff')
    .header('x-frame-options', 'DENY')
    .header('referrer-policy', 'no-referrer')
    // small files, and a new version must show at once: revalidate each time
    .header('cache-control', 'no-cache')
}

export async function dashboardPages (app: FastifyInstance): Promise<void> {
  const files = dashboardFiles()
  const index = files.get('index.html')
  if (index === undefined) throw new Error(`the dashboard's index.html is missing from ${STATIC_DIR}`)
  app.get('/dashboard', { schema: { hide: true } }, async (_req, reply) =>
    await secured(reply, index.type).send(index.body))
  app.get<{ Params: { file: string } }>('/dashboard/assets/:file', { schema: { hide: true } }, async (req, reply) => {
    const file = req.params.file === 'index.html' ? undefined : files.get(req.params.file)
    if (file === undefined) throw new errors.HOOKPOST_ERR_NOT_FOUND('asset', req.params.file)
    return await secured(reply, file.type).send(file.body)
  })
}
