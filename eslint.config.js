// Lint: neostandard (Fastify's own style, TypeScript included), lines of at most 120, and the direction of
// dependencies between lib's folders, so that the layout stays the architecture (README: Layout).
import neostandard from 'neostandard'

/** What a folder of lib/ may not import: its callers, never the other way round. */
const LAYERS = {
  'lib/domain': ['db', 'store', 'api', 'delivery', 'services', 'http', 'graphql'],
  'lib/db': ['domain', 'store', 'api', 'delivery', 'services', 'http', 'graphql'],
  'lib/store': ['api', 'delivery', 'services', 'http', 'graphql'],
  'lib/delivery': ['store', 'api', 'services', 'http', 'graphql'],
  'lib/services': ['api', 'http', 'graphql'],
  'lib/api': ['services', 'http', 'graphql'],
  'lib/http': ['graphql', 'services'],
  'lib/graphql': ['http', 'services'],
  // REST's routes: a transport, as lib/http is
  routes: ['graphql', 'services', 'delivery'],
  // the dashboard's pages: files served as they are, nothing from the data side
  'lib/dashboard': ['db', 'store', 'api', 'delivery', 'services', 'http', 'graphql']
}
// what the dashboard's pages use of the browser (lib/dashboard/static)
const BROWSER_GLOBALS = ['window', 'document', 'location', 'sessionStorage', 'fetch', 'Node', 'URLSearchParams',
  'TextDecoderStream', 'AbortController', 'Intl', 'setTimeout', 'clearTimeout', 'console']

// the wiring and the entry point import everything; nothing imports them
const WIRING = ['app', 'server', 'engine', 'metrics']

const layerRules = Object.entries(LAYERS).map(([dir, banned]) => ({
  files: [`${dir}/**/*.ts`],
  rules: {
    'no-restricted-imports': ['error', {
      patterns: [
        // any relative path through the folder: ../x/, ./../x/, ../../lib/x/, a nested file's ../../x/
        ...banned.map(b => ({
          group: [`**/${b}/*`, `**/${b}`],
          message: `${dir} may not depend on lib/${b} (see README: Layout)`
        })),
        {
          group: WIRING.flatMap(w => [`**/lib/${w}.js`, `../${w}.js`]),
          message: 'only lib/app.ts wires the parts together'
        }
      ]
    }]
  }
}))

export default [
  ...neostandard({ ts: true, ignores: ['dist/**', 'data/**', 'coverage/**', '.tap/**', 'lib/graphql/static/**'] }),
  {
    rules: {
      '@stylistic/max-len': ['error', { code: 120, ignoreUrls: true, ignoreRegExpLiterals: true }]
    }
  },
  {
    // a test's name says what it shows, and its SQL reads as SQL: neither is cut to fit
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@stylistic/max-len': ['error', {
        code: 120,
        ignoreUrls: true,
        ignoreRegExpLiterals: true,
        ignoreStrings: true,
        ignoreTemplateLiterals: true
      }]
    }
  },
  {
    // the dashboard's pages run in the browser, as plain ES modules (no build step)
    files: ['lib/dashboard/static/**/*.js'],
    languageOptions: {
      sourceType: 'module',
      globals: Object.fromEntries(BROWSER_GLOBALS.map(g => [g, 'readonly']))
    }
  },
  ...layerRules
]
