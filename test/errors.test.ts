// The error catalogue: keyed by its codes (so grepping a code finds its throwers), and documented in
// README.md's table, both ways, with the right status.
import { readFileSync } from 'node:fs'
import t from 'tap'
import { errors } from '../lib/errors.js'

// tap runs in the repository's root, whether the suite is compiled (dist/test) or not
const readme = readFileSync('README.md', 'utf8')
const documented = new Map([...readme.matchAll(/^\| `(HOOKPOST_ERR_[A-Z_]+)` \| (\d{3}) \| (.+) \|$/gm)]
  .map(m => [m[1]!, { status: Number(m[2]), meaning: m[3]! }]))

t.test('every key of the catalogue is its own code', async (t) => {
  for (const [key, Make] of Object.entries(errors)) {
    const e = new (Make as new (...a: unknown[]) => Error & { code: string })('x', 'y')
    t.equal(e.code, key, key)
  }
})

t.test('README documents every code, with its status, and nothing else', async (t) => {
  t.ok(documented.size > 0, 'the table is found')
  for (const [key, Make] of Object.entries(errors)) {
    const e = new (Make as new (...a: unknown[]) => Error & { statusCode: number })('x', 'y')
    t.equal(documented.get(key)?.status, e.statusCode, `${key} is documented with status ${e.statusCode}`)
  }
  for (const code of documented.keys()) t.ok(Object.hasOwn(errors, code), `${code} exists in lib/errors.ts`)
})
