// GraphiQL at /graphiql, from files in node_modules rather than a CDN: the playground must work on a
// machine with no internet access, and an admin page should not execute third-party scripts.
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { errors } from '../errors.js'

const require = createRequire(import.meta.url)

// package exports do not list the UMD builds: find them from each package's own directory
const inPackage = (pkg: string, file: string) => () => join(dirname(require.resolve(`${pkg}/package.json`)), file)

const ASSETS: Record<string, { path: () => string, type: string }> = {
  'react.js': { path: inPackage('react', 'umd/react.production.min.js'), type: 'text/javascript' },
  'react-dom.js': { path: inPackage('react-dom', 'umd/react-dom.production.min.js'), type: 'text/javascript' },
  'graphiql.js': { path: inPackage('graphiql', 'graphiql.min.js'), type: 'text/javascript' },
  'graphiql.css': { path: inPackage('graphiql', 'graphiql.min.css'), type: 'text/css' },
  'main.js': { path: () => staticFile('main.js'), type: 'text/javascript' }
}

// static/ sits beside this file; `npm run build` copies it next to the compiled one
function staticFile (name: string): string {
  return fileURLToPath(new URL(`./static/${name}`, import.meta.url))
}

export async function graphiqlRoutes (app: FastifyInstance): Promise<void> {
  const cache = new Map<string, Buffer>()
  const load = async (path: string): Promise<Buffer> => {
    let b = cache.get(path)
    if (b === undefined) {
      b = await readFile(path)
      cache.set(path, b)
    }
    return b
  }
  app.get('/graphiql', { schema: { hide: true } }, async (_req, reply) => {
    return await reply.type('text/html; charset=utf-8').send(await load(staticFile('graphiql.html')))
  })
  app.get<{ Params: { file: string } }>('/graphiql/assets/:file', { schema: { hide: true } }, async (req, reply) => {
    const { file } = req.params
    const asset = Object.hasOwn(ASSETS, file) ? ASSETS[file] : undefined
    if (asset === undefined) throw new errors.HOOKPOST_ERR_NOT_FOUND('asset', file)
    reply.header('cache-control', 'public, max-age=3600')
    return await reply.type(asset.type).send(await load(asset.path()))
  })
}
