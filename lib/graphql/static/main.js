/* global React, ReactDOM, GraphiQL */
// The playground: every asset is served by hookpost itself, so it works with no internet access.
// With PLT_ADMIN_SECRET set, put the secret in the Headers tab: {"X-PLATFORMATIC-ADMIN-SECRET": "..."}
const fetcher = GraphiQL.createFetcher({ url: new URL('/graphql', window.location.href).href })
const params = new URLSearchParams(window.location.search)
ReactDOM.createRoot(document.getElementById('graphiql')).render(
  React.createElement(GraphiQL, {
    fetcher,
    defaultQuery: params.get('query') ?? '{\n  queues(limit: 10) {\n    id\n    name\n    callbackUrl\n  }\n}\n',
    defaultHeaders: params.get('headers') ?? undefined,
    defaultEditorToolsVisibility: true
  })
)
