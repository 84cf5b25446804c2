// A hostile query must not exhaust the server. This rule bounds three things before anything runs:
// - depth: data fields nest at most MAX_QUERY_DEPTH deep (introspection is bounded by cost instead,
//   since GraphiQL's own introspection query is 15 deep, mostly `ofType` chains of one object each);
// - cost: every field costs 1 (a body, which may be 1 MiB, BODY_COST), and a list field multiplies what
//   is under it by the most rows it can return, so the estimate bounds the rows read (each list's SQL
//   has a LIMIT; see lib/store/*) and the bytes of bodies sent back;
// - root fields: each root field (alias included) runs its own SQL statement;
// and, before any of that, the document's length in tokens (parseDocument), since parsing and the spec's
// own rules are linear in it: 30,000 one-field operations in 740 KB took a second to parse and validate.
// The walk is memoised per fragment, so it is linear in the document's size: fragments that spread
// another fragment twice, n levels deep, are 2^n fields when expanded but n fragments to analyse.
import {
  GraphQLError, Kind, getIntrospectionQuery, parse, specifiedRules, validate, type DocumentNode,
  isInputObjectType, isInterfaceType, isObjectType, isUnionType, isEnumType,
  type FieldNode, type FragmentDefinitionNode, type GraphQLSchema, type SelectionSetNode, type ValidationContext
} from 'graphql'
import { MAX_BULK_INPUTS, MAX_LIMIT } from '../store/list.js'

// GraphiQL's introspection query is 163 tokens; a bulk insert of 1,000 inline inputs about 9,000 (larger
// ones belong in variables, which are JSON and cost no parsing). 10,000 parse in a few ms.
export const MAX_QUERY_TOKENS = 10_000

// 100 queues, each with its messages, crons and attempts (~50,000) passes; lists three deep (~2,000,000) do not
export const MAX_QUERY_COST = 200_000
// real queries here rarely pass 5
export const MAX_QUERY_DEPTH = 10
// 3,000 aliases of one root field were 3,000 statements; a dashboard needs a handful
export const MAX_ROOT_FIELDS = 25

// A message's or cron's body may be 1 MiB: a request gets at most ~130 of them, a REST page (MAX_LIMIT)
// with every other field beside it, not two. Costed by rows alone, 8 aliases of
// messages(limit: 100) { body } were 800 MiB, past V8's longest string.
export const BODY_COST = 1500
// an event's payload is a body (1 MiB at most); a payload schema is at most 64 KB. A replay writes up to
// MAX_REPLAY messages: costed so that a request holds one (attack round: 25 aliased replays wrote 250,000)
const FIELD_COST: Record<string, number> = {
  body: BODY_COST, bodyJson: BODY_COST, payload: BODY_COST, schema: 100, replayQueue: MAX_QUERY_COST / 2 + 1
}

// list fields of the data schema and the most rows each may return (lib/graphql/resolvers.ts enforces
// the same bounds at run time: `limit` is at most MAX_LIMIT, bulk inputs and deletes at most MAX_BULK_INPUTS)
const LIST_FIELDS: Record<string, number> = {
  queues: MAX_LIMIT,
  messages: MAX_LIMIT,
  crons: MAX_LIMIT,
  attempts: MAX_LIMIT,
  events: MAX_LIMIT,
  eventTypes: MAX_LIMIT,
  deleteEventTypes: MAX_BULK_INPUTS,
  insertQueues: MAX_BULK_INPUTS,
  insertMessages: MAX_BULK_INPUTS,
  insertCrons: MAX_BULK_INPUTS,
  deleteQueues: MAX_BULK_INPUTS,
  deleteMessages: MAX_BULK_INPUTS,
  deleteCrons: MAX_BULK_INPUTS
}

/** The request's variables, when the rule is made for one request (plugin.ts); else none are known. */
export type Variables = Record<string, unknown> | null | undefined

/**
 * The most rows a data field returns: its list maximum, or a `limit` or an `inputs` list below it, given
 * literally or as a variable (pg-hooks' clients pass inputs as variables).
 */
function rowsOf (field: FieldNode, variables: Variables): number {
  const max = LIST_FIELDS[field.name.value]
  if (max === undefined) return 1
  const arg = (name: string): unknown => {
    const v = field.arguments?.find(a => a.name.value === name)?.value
    if (v?.kind === Kind.VARIABLE) return variables?.[v.name.value]
    if (v?.kind === Kind.LIST) return v.values
    // an AST need not come from text: an IntValue may hold anything, which graphql-js reads with parseInt
    return v?.kind === Kind.INT ? Number(v.value) : undefined
  }
  const inputs = arg('inputs')
  if (Array.isArray(inputs)) return Math.max(1, Math.min(max, inputs.length))
  const n = arg('limit')
  return typeof n === 'number' && Number.isInteger(n) ? Math.max(1, Math.min(max, n)) : max
}

const INTROSPECTION_ROOTS = new Set(['__schema', '__type'])

/** The lists of the introspection types, sized by this schema: they are as long as the schema is wide. */
function introspectionSizes (schema: GraphQLSchema): Record<string, number> {
  const types = Object.values(schema.getTypeMap())
  let fields = 1; let inputFields = 1; let args = 1; let enumValues = 1; let members = 1
  for (const t of types) {
    if (isObjectType(t) || isInterfaceType(t)) {
      const fs = Object.values(t.getFields())
      fields = Math.max(fields, fs.length)
      for (const f of fs) args = Math.max(args, f.args.length)
      members = Math.max(members, t.getInterfaces().length)
    } else if (isInputObjectType(t)) {
      inputFields = Math.max(inputFields, Object.keys(t.getFields()).length)
    } else if (isEnumType(t)) {
      enumValues = Math.max(enumValues, t.getValues().length)
    } else if (isUnionType(t)) {
      members = Math.max(members, t.getTypes().length)
    }
  }
  for (const d of schema.getDirectives()) args = Math.max(args, d.args.length)
  for (const t of types) if (isInterfaceType(t)) members = Math.max(members, schema.getPossibleTypes(t).length)
  return {
    types: types.length,
    directives: schema.getDirectives().length,
    fields,
    inputFields,
    args,
    enumValues,
    interfaces: members,
    possibleTypes: members
  }
}

const sizesBySchema = new WeakMap<GraphQLSchema, Record<string, number>>()

/** cost: data; icost: introspection, which has a budget of its own (introspectionBudget) */
interface Measure { cost: number, icost: number, depth: number, rootFields: number }

// Introspection costs what the schema's width makes it (its lists are sized by the widest type), and
// tools must always read the schema: so it is held to twice what the fullest standard introspection
// query (getIntrospectionQuery with every option, as GraphiQL, codegen and Apollo send it) costs on
// this schema, whatever the schema grows to. Lists of types nested in lists of fields exceed that at once.
const INTROSPECTION_HEADROOM = 2
const budgets = new WeakMap<GraphQLSchema, number>()

export function introspectionBudget (schema: GraphQLSchema): number {
  let b = budgets.get(schema)
  if (b === undefined) {
    const all = ['descriptions', 'specifiedByUrl', 'directiveIsRepeatable', 'schemaDescription',
      'inputValueDeprecation', 'oneOf']
    const full = parse(getIntrospectionQuery(Object.fromEntries(all.map(o => [o, true]))))
    b = INTROSPECTION_HEADROOM * Math.max(...measure(schema, full.definitions).map(x => x.m.icost))
    budgets.set(schema, b)
  }
  return b
}

/** Cost, depth and root-field count of each operation; each fragment is measured once. */
export function measure (schema: GraphQLSchema, definitions: readonly any[], variables?: Variables):
Array<{ node: any, m: Measure }> {
  let sizes = sizesBySchema.get(schema)
  if (sizes === undefined) sizesBySchema.set(schema, sizes = introspectionSizes(schema))
  const fragments = new Map<string, FragmentDefinitionNode>()
  for (const d of definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d)
  // keyed by fragment name and where it is spread (see Where): costs differ by place
  const memo = new Map<string, Measure>()
  const visiting = new Set<string>()

  // where a selection set is: introspection (lists sized by the schema), the root, or data. (What an
  // insert hands back is data too: a repeated idempotencyKey returns the stored message, once per input.)
  type Where = 'introspection' | 'root' | 'data'
  const walk = (set: SelectionSetNode | undefined, where: Where): Measure => {
    const out: Measure = { cost: 0, icost: 0, depth: 0, rootFields: 0 }
    if (set === undefined) return out
    for (const sel of set.selections) {
      let m: Measure
      if (sel.kind === Kind.FIELD) {
        const name = sel.name.value
        const introspection = where === 'introspection' || INTROSPECTION_ROOTS.has(name)
        const next: Where = introspection ? 'introspection' : 'data'
        const under = walk(sel.selectionSet, next)
        const rows = introspection ? (sizes[name] ?? 1) : rowsOf(sel, variables)
        m = introspection
          ? { cost: 0, icost: 1 + rows * under.icost, depth: 0, rootFields: 1 }
          : {
              cost: (FIELD_COST[name] ?? 1) + rows * under.cost,
              icost: rows * under.icost,
              depth: 1 + under.depth,
              rootFields: 1
            }
      } else if (sel.kind === Kind.INLINE_FRAGMENT) {
        m = walk(sel.selectionSet, where)
      } else {
        const name = sel.name.value
        const key = `${where}:${name}`
        const known = memo.get(key)
        const frag = fragments.get(name)
        // an unknown or cyclic spread is the spec rules' business (KnownFragmentNames, NoFragmentCycles)
        if (known !== undefined) m = known
        else if (frag === undefined || visiting.has(key)) m = { cost: 0, icost: 0, depth: 0, rootFields: 0 }
        else {
          visiting.add(key)
          m = walk(frag.selectionSet, where)
          visiting.delete(key)
          memo.set(key, m)
        }
      }
      out.cost += m.cost
      out.icost += m.icost
      out.depth = Math.max(out.depth, m.depth)
      out.rootFields += m.rootFields
    }
    return out
  }

  return definitions
    .filter(d => d.kind === Kind.OPERATION_DEFINITION)
    .map(d => ({ node: d, m: walk(d.selectionSet, 'root') }))
}

/**
 * The document parsed as GraphQL text, with at most MAX_QUERY_TOKENS tokens, or the reason it is not one.
 * Done before mercurius parses: when graphql-js cannot parse a document mercurius tries it as a
 * JSON-encoded AST, in which no token limit holds and literals need not be what they say.
 */
export function parseDocument (source: string): { document: DocumentNode } | { problem: string } {
  try {
    return { document: parse(source, { maxTokens: MAX_QUERY_TOKENS }) }
  } catch (err) {
    const message = (err as Error).message
    return { problem: /more that \d+ tokens/.test(message) ? `query has more than ${MAX_QUERY_TOKENS} tokens; pass large inputs as variables` : message }
  }
}

/** The spec's rules and ours, for a document that did not come through mercurius's validation (subscriptions). */
export function validateDocument (schema: GraphQLSchema, document: DocumentNode): readonly GraphQLError[] {
  return validate(schema, document, [...specifiedRules, costRule])
}

/** The rule for one request: its variables size the lists they feed (an `inputs` list, a `limit`). */
export function costRuleFor (variables: Variables) {
  return (context: ValidationContext) => costVisitor(context, variables)
}

export function costRule (context: ValidationContext) {
  return costVisitor(context, undefined)
}

function costVisitor (context: ValidationContext, variables: Variables) {
  return {
    Document (node: { definitions: readonly any[] }) {
      for (const { node: op, m } of measure(context.getSchema(), node.definitions, variables)) {
        const name = op.name?.value ?? 'the operation'
        if (m.depth > MAX_QUERY_DEPTH) {
          context.reportError(new GraphQLError(
            `${name} is ${m.depth} fields deep; at most ${MAX_QUERY_DEPTH} are allowed`, { nodes: [op] }))
        }
        if (m.rootFields > MAX_ROOT_FIELDS) {
          context.reportError(new GraphQLError(
            `${name} selects ${m.rootFields} root fields (aliases included); ` +
              `at most ${MAX_ROOT_FIELDS} are allowed, each runs its own query`,
            { nodes: [op] }))
        }
        // (not `>`: a NaN must not pass)
        if (!(m.cost <= MAX_QUERY_COST)) {
          context.reportError(new GraphQLError(
            `query is too expensive: cost ${m.cost} exceeds ${MAX_QUERY_COST}; ` +
              'ask for fewer rows (limit) or fewer nested lists',
            { nodes: [op] }))
        }
        const budget = introspectionBudget(context.getSchema())
        if (!(m.icost <= budget)) {
          context.reportError(new GraphQLError(
            `introspection is too expensive: cost ${m.icost} exceeds ${budget} (twice the standard ` +
              'introspection query); nest fewer lists of types and fields', { nodes: [op] }))
        }
      }
    }
  }
}
