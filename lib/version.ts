// hookpost's version, read once from package.json: the OpenAPI document and the User-Agent say it.
import { readFileSync } from 'node:fs'

function packageVersion (): string {
  // this file runs from lib/ (tsx) or from dist/lib/ (the build): package.json is one or two levels up
  for (const path of ['../package.json', '../../package.json']) {
    try {
      const text = readFileSync(new URL(path, import.meta.url), 'utf8')
      const pkg = JSON.parse(text) as { name?: unknown, version?: unknown }
      if (pkg.name === 'hookpost' && typeof pkg.version === 'string') return pkg.version
    } catch {}
  }
  throw new Error('hookpost: package.json not found beside lib/')
}

export const VERSION = packageVersion()
