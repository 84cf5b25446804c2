// List parameters, from either transport into the ListQuery the store runs: REST's querystring
// (Platformatic's: limit, offset, totalCount, where.<field>.<op>, orderby.<field>) and GraphQL's
// arguments (limit, offset, where: { field: { op } }, orderBy). One set of rules and errors for both.
import { errors } from '../errors.js'
import {
  FILTER_OPS, MAX_LIMIT, TEXT_OPS, filterableFields, sortableFields,
  type Entity, type FieldType, type Filter, type FilterOp, type ListQuery, type Order
} from '../store/list.js'
import { dateTimeProblem } from './date-time.js'
import { validate } from './validate.js'

// the largest offset PostgreSQL takes as an int4 parameter
const MAX_OFFSET = 2_147_483_647

/** limit and offset: REST's querystring and GraphQL's arguments are checked against the same bounds. */
const pageProperties = {
  limit: { type: 'integer', minimum: 0, maximum: MAX_LIMIT, default: MAX_LIMIT, description: `at most ${MAX_LIMIT}` },
  offset: { type: 'integer', minimum: 0, maximum: MAX_OFFSET, default: 0 }
} as const

const pageSchema = { type: 'object', properties: pageProperties } as const
const relationSchema = { type: 'object', properties: { limit: pageProperties.limit } } as const

/** REST's querystring schema: its keys come from the entity, so its type is a record. */
export interface ListQuerySchema { type: 'object', properties: Record<string, object>, additionalProperties: false }

export function listQuerySchema (entity: Entity): ListQuerySchema {
  const properties: Record<string, object> = {
    ...pageProperties,
    totalCount: {
      type: 'boolean', default: false, description: 'put the total number of matching rows in the X-Total-Count header'
    },
    fields: { type: 'string', maxLength: 2000, description: 'comma-separated names of the fields to return' }
  }
  for (const [field, def] of filterableFields(entity)) {
    for (const op of opsOf(def.type)) {
      const many = op === 'in' || op === 'nin'
      const orNull = op === 'eq' || op === 'neq' ? ', or null' : ''
      properties[`where.${field}.${op}`] = {
        type: 'string',
        maxLength: 10_000,
        description: TEXT_OPS.includes(op)
          ? `SQL ${op.toUpperCase()} pattern: % any text, _ one character`
          : many ? `comma-separated ${def.type} values` : `${def.type}${orNull}`
      }
    }
  }
  properties['where.or'] = {
    type: 'string',
    maxLength: 10_000,
    description: 'any of these conditions, Platformatic\'s syntax: (name.eq=a|id.in=1,2)'
  }
  for (const field of sortableFields(entity)) {
    properties[`orderby.${field}`] = { type: 'string', enum: ['asc', 'desc'] }
  }
  return { type: 'object', properties, additionalProperties: false }
}

/** A bulk update's querystring: the where parameters of a list, and fields. */
export function whereQuerySchema (entity: Entity): ListQuerySchema {
  const { properties } = listQuerySchema(entity)
  return {
    type: 'object',
    properties: Object.fromEntries(
      Object.entries(properties).filter(([k]) => k.startsWith('where.') || k === 'fields')),
    additionalProperties: false
  }
}

const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/

/** One filter value, given as text (REST's querystring, GraphQL's String and ID filters). */
export function parseFilterValue (param: string, type: FieldType, raw: string): unknown {
  switch (type) {
    case 'integer': {
      if (!/^-?\d{1,18}$/.test(raw)) {
        throw new errors.HOOKPOST_ERR_INVALID_FIELD(param, `expected an integer, got ${JSON.stringify(raw)}`)
      }
      return Number(raw)
    }
    case 'boolean':
      if (raw !== 'true' && raw !== 'false') {
        throw new errors.HOOKPOST_ERR_INVALID_FIELD(param, `expected true or false, got ${JSON.stringify(raw)}`)
      }
      return raw === 'true'
    case 'date-time': {
      // ISO 8601 only: Date() alone accepts trailing junk such as "2024-01-01 (x)", and rolls an impossible
      // date over (2024-02-30 is March 1, T24:00 the next day); PostgreSQL has no year 0
      const iso = ISO_DATE_TIME.test(raw)
      const problem = iso ? dateTimeProblem(raw) : undefined
      const d = new Date(raw)
      if (!iso || problem !== undefined || Number.isNaN(d.getTime()) || d.getUTCFullYear() < 1) {
        const why = problem !== undefined ? ` (${problem})` : ''
        throw new errors.HOOKPOST_ERR_INVALID_FIELD(param,
          `expected an ISO 8601 date-time, got ${JSON.stringify(raw)}${why}`)
      }
      return d.toISOString()
    }
    default:
      // text columns cannot hold a NUL: refused here, naming the filter, not by PostgreSQL
      if (raw.includes('\u0000')) {
        throw new errors.HOOKPOST_ERR_INVALID_FIELD(param, 'must not contain a NUL (\\u0000) character')
      }
      return raw
  }
}

// LIKE never uses an index here and backtracks on patterns such as %aaa…ab: a request gets at most
// MAX_PATTERNS of them, each at most MAX_PATTERN_LENGTH characters (attack round: 10 requests of two
// 150-character patterns over 200k messages held every connection of the pool for 30 s)
export const MAX_PATTERN_LENGTH = 100
export const MAX_PATTERNS = 2

/** like and ilike conditions, anywhere in the filters (or, and): bounded in number and length, well formed. */
function checkPatterns (filters: Filter[]): void {
  const patterns: Array<{ name: string, value: string }> = []
  const walk = (fs: Filter[]): void => {
    for (const f of fs) {
      if ('or' in f) walk(f.or)
      else if ('and' in f) walk(f.and)
      else if (TEXT_OPS.includes(f.op) && typeof f.value === 'string') {
        patterns.push({ name: `where.${f.field}.${f.op}`, value: f.value })
      }
    }
  }
  walk(filters)
  if (patterns.length > MAX_PATTERNS) {
    const message = `at most ${MAX_PATTERNS} like or ilike conditions`
    throw new errors.HOOKPOST_ERR_INVALID_FIELD(patterns[MAX_PATTERNS]!.name, message)
  }
  for (const { name, value } of patterns) {
    if (value.length > MAX_PATTERN_LENGTH) {
      throw new errors.HOOKPOST_ERR_INVALID_FIELD(name, `a pattern of at most ${MAX_PATTERN_LENGTH} characters`)
    }
    // an odd run of backslashes at the end escapes nothing: PostgreSQL refuses it
    if (/(?:^|[^\\])(?:\\\\)*\\$/.test(value)) {
      throw new errors.HOOKPOST_ERR_INVALID_FIELD(name, 'a pattern must not end with an escape character (\\)')
    }
  }
}

/** The operators a field of this type takes: like and ilike on text only. */
function opsOf (type: FieldType): readonly FilterOp[] {
  return type === 'string' ? FILTER_OPS : FILTER_OPS.filter(op => !TEXT_OPS.includes(op))
}

/** One REST condition: where.<field>.<op>=<raw>, named `param` in errors. */
function restFilter (entity: Entity, param: string, field: string, op: FilterOp, raw: string): Filter {
  const def = entity.fields[field]
  if (def?.filter !== true || !opsOf(def.type).includes(op)) {
    throw new errors.HOOKPOST_ERR_INVALID_FIELD(param, `no filter ${field}.${op}`)
  }
  if (op === 'in' || op === 'nin') {
    return { field, op, value: raw === '' ? [] : raw.split(',').map(v => parseFilterValue(param, def.type, v)) }
  }
  if (raw === 'null' && (op === 'eq' || op === 'neq')) return { field, op, value: null }
  return { field, op, value: parseFilterValue(param, def.type, raw) }
}

// where.or=(a.eq=1|b.in=2,3): Platformatic's syntax, `|` between conditions, `,` between in/nin values
const OR_SYNTAX = /^\((.*)\)$/s

/** where.or: its conditions, each checked as where.<field>.<op> is. */
function restOr (entity: Entity, raw: string): Filter {
  const inner = OR_SYNTAX.exec(raw)?.[1]
  if (inner === undefined || inner === '') {
    throw new errors.HOOKPOST_ERR_INVALID_FIELD('where.or', 'expected (field.op=value|field.op=value)')
  }
  return {
    or: inner.split('|').map((part) => {
      const eq = part.indexOf('=')
      const [field, op, extra] = part.slice(0, Math.max(0, eq)).split('.')
      if (eq < 0 || field === undefined || op === undefined || extra !== undefined) {
        throw new errors.HOOKPOST_ERR_INVALID_FIELD('where.or', `expected field.op=value, got ${JSON.stringify(part)}`)
      }
      const value = part.slice(eq + 1)
      return restFilter(entity, 'where.or', field, op as FilterOp, value)
    })
  }
}

/** REST: the querystring, already checked against listQuerySchema (types, bounds, known keys). */
export function fromQuerystring (entity: Entity, query: Readonly<Record<string, unknown>>):
ListQuery & { totalCount: boolean } {
  const where: Filter[] = []
  const orderBy: Order[] = []
  for (const [key, value] of Object.entries(query)) {
    const parts = key.split('.')
    if (key === 'where.or') {
      where.push(restOr(entity, String(value)))
    } else if (parts[0] === 'where' && parts.length === 3) {
      where.push(restFilter(entity, key, parts[1]!, parts[2] as FilterOp, String(value)))
    } else if (parts[0] === 'orderby' && parts.length === 2) {
      orderBy.push({ field: parts[1]!, direction: value === 'desc' ? 'desc' : 'asc' })
    }
  }
  checkPatterns(where)
  return {
    limit: (query.limit as number | undefined) ?? MAX_LIMIT,
    offset: (query.offset as number | undefined) ?? 0,
    totalCount: query.totalCount === true,
    where,
    orderBy
  }
}

type Args = Record<string, any>

/**
 * GraphQL: `where: { field: { op: value }, or: [{ field: { op: value } }] }`; values arrive typed, ids
 * and date-times as strings.
 */
export function filtersOf (entity: Entity, where: Args | null | undefined): Filter[] {
  const out = filtersIn(entity, where)
  checkPatterns(out)
  return out
}

function filtersIn (entity: Entity, where: Args | null | undefined): Filter[] {
  const out: Filter[] = []
  for (const [field, ops] of Object.entries(where ?? {})) {
    if (field === 'or') {
      if (Array.isArray(ops)) out.push({ or: ops.map((w: Args) => ({ and: filtersIn(entity, w) })) })
      continue
    }
    const def = entity.fields[field]!
    for (const [op, value] of Object.entries(ops as Args)) {
      if (value === undefined || !(FILTER_OPS as readonly string[]).includes(op)) continue
      const name = `where.${field}.${op}`
      const one = (v: unknown): unknown => typeof v === 'string' ? parseFilterValue(name, def.type, v) : v
      const parsed = value === null ? null : Array.isArray(value) ? value.map(one) : one(value)
      out.push({ field, op: op as FilterOp, value: parsed })
    }
  }
  return out
}

/** GraphQL: a list field's arguments, with REST's bounds and errors. */
export function fromArgs (entity: Entity, args: Args): ListQuery {
  const page = validate<{ limit?: number, offset?: number }>(pageSchema,
    { limit: args.limit ?? undefined, offset: args.offset ?? undefined }, 'args')
  const orderBy: Order[] = (args.orderBy ?? [])
    .map((o: Args) => ({ field: o.field, direction: o.direction === 'DESC' ? 'desc' : 'asc' }))
  return { limit: page.limit ?? MAX_LIMIT, offset: page.offset ?? 0, where: filtersOf(entity, args.where), orderBy }
}

/** GraphQL: a relation field's `limit` (per parent), with the same bound as a list's. */
export function relationLimit (limit: unknown): number {
  return validate<{ limit?: number }>(relationSchema, { limit: limit ?? undefined }, 'args').limit ?? MAX_LIMIT
}
