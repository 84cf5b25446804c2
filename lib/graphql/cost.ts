// A hostile query must not exhaust the server. Depth is capped by mercurius (queryDepth); this rule
// caps the work: every field costs 1, and a list field multiplies what is under it by its size.
import { GraphQLError, Kind, type FieldNode, type FragmentDefinitionNode, type SelectionSetNode, type ValidationContext } from 'graphql'

// 100 queues, each with its messages, crons and attempts (~50,000) passes; lists three deep (~2,000,000) do not
export const MAX_QUERY_COST = 200_000
// list fields and the rows each may return; `limit` can lower it, never raise it past 100
const LIST_FIELDS: Record<string, number> = {
  queues: 100, messages: 100, crons: 100, attempts: 100,
  insertQueues: 100, insertMessages: 100, insertCrons: 100, deleteQueues: 100, deleteMessages: 100, deleteCrons: 100
}

function size (field: FieldNode): number {
  const max = LIST_FIELDS[field.name.value]
  if (max === undefined) return 1
  const limit = field.arguments?.find(a => a.name.value === 'limit')?.value
  if (limit?.kind === Kind.INT) return Math.max(1, Math.min(max, Number(limit.value)))
  return max
}

function cost (set: SelectionSetNode | undefined, fragments: Record<string, FragmentDefinitionNode>, seen: Set<string>): number {
  if (set === undefined) return 0
  let total = 0
  for (const sel of set.selections) {
    if (sel.kind === Kind.FIELD) {
      total += 1 + size(sel) * cost(sel.selectionSet, fragments, seen)
    } else if (sel.kind === Kind.INLINE_FRAGMENT) {
      total += cost(sel.selectionSet, fragments, seen)
    } else {
      const name = sel.name.value
      if (seen.has(name)) continue // cycles are the spec's NoFragmentCycles rule's business
      const frag = fragments[name]
      if (frag !== undefined) total += cost(frag.selectionSet, fragments, new Set([...seen, name]))
    }
  }
  return total
}

export function costRule (context: ValidationContext) {
  return {
    Document (node: { definitions: readonly any[] }) {
      const fragments: Record<string, FragmentDefinitionNode> = {}
      for (const d of node.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments[d.name.value] = d
      for (const d of node.definitions) {
        if (d.kind !== Kind.OPERATION_DEFINITION) continue
        const c = cost(d.selectionSet, fragments, new Set())
        if (c > MAX_QUERY_COST) {
          context.reportError(new GraphQLError(`query is too expensive: cost ${c} exceeds ${MAX_QUERY_COST}; ask for fewer rows (limit) or fewer nested lists`, { nodes: [d] }))
        }
      }
    }
  }
}
