// Filtered, ordered, paged SELECTs over one table, shared by every resource and by REST and GraphQL.
// Field and column names only ever come from the entity's own whitelist; values are always $n.
import type { Queryable } from '../db/pool.js'
import { read, type Statement } from '../db/query.js'

export type FieldType = 'integer' | 'string' | 'boolean' | 'date-time'

export interface FieldDef {
  column: string
  type: FieldType
  /** may appear in where.<field>.<op> */
  filter?: boolean
  /** may appear in orderby.<field> */
  sort?: boolean
}

export interface Entity {
  /** singular, for messages: "queue" */
  name: string
  table: string
  /** SELECT list whose aliases are the API field names */
  select: string
  fields: Record<string, FieldDef>
}

export const FILTER_OPS = ['eq', 'neq', 'gt', 'gte', 'lt', 'lte', 'in', 'nin', 'like', 'ilike'] as const
export type FilterOp = typeof FILTER_OPS[number]
/** SQL LIKE patterns (% and _), Platformatic's like and ilike: on text fields only */
export const TEXT_OPS: readonly FilterOp[] = ['like', 'ilike']

/** One condition; a list of them is ANDed. `or`: any of its conditions (Platformatic's where.or); `and`: all. */
export type Filter = { field: string, op: FilterOp, value: unknown } | { or: Filter[] } | { and: Filter[] }
export interface Order { field: string, direction: 'asc' | 'desc' }

export interface ListQuery {
  limit: number
  offset: number
  where: Filter[]
  orderBy: Order[]
}

export const MAX_LIMIT = 100
// rows one bulk call (GraphQL insert*/delete*) may write: a statement of this size stays well under a second
export const MAX_BULK_INPUTS = 1000

const SQL_OPS: Record<FilterOp, string> = {
  eq: '=', neq: '<>', gt: '>', gte: '>=', lt: '<', lte: '<=', in: '= ANY', nin: '<> ALL', like: 'LIKE', ilike: 'ILIKE'
}

const PG_ARRAY_TYPES: Record<FieldType, string> = {
  integer: 'bigint[]', string: 'text[]', boolean: 'boolean[]', 'date-time': 'timestamptz[]'
}

function whereClause (entity: Entity, filters: Filter[], values: unknown[]): string {
  const parts = conditions(entity, filters, values)
  return parts.length > 0 ? 'WHERE ' + parts.join(' AND ') : ''
}

function conditions (entity: Entity, filters: Filter[], values: unknown[]): string[] {
  const parts: string[] = []
  for (const f of filters) {
    if ('or' in f) {
      const any = f.or.map(g => conditions(entity, [g], values)[0]!)
      parts.push(any.length > 0 ? `(${any.join(' OR ')})` : 'false')
      continue
    }
    if ('and' in f) {
      const all = conditions(entity, f.and, values)
      parts.push(all.length > 0 ? `(${all.join(' AND ')})` : 'true')
      continue
    }
    const def = entity.fields[f.field]
    if (!def?.filter) throw new Error(`field ${f.field} is not filterable`)
    if (f.value === null && (f.op === 'eq' || f.op === 'neq')) {
      parts.push(`${def.column} IS ${f.op === 'eq' ? '' : 'NOT '}NULL`)
      continue
    }
    values.push(f.value)
    if (f.op === 'in' || f.op === 'nin') {
      parts.push(`${def.column} ${SQL_OPS[f.op]}($${values.length}::${PG_ARRAY_TYPES[def.type]})`)
    } else {
      parts.push(`${def.column} ${SQL_OPS[f.op]} $${values.length}`)
    }
  }
  return parts
}

function orderClause (entity: Entity, orderBy: ListQuery['orderBy']): string {
  const order = orderBy.map(o => {
    const def = entity.fields[o.field]
    if (!def?.sort) throw new Error(`field ${o.field} is not sortable`)
    return `${def.column} ${o.direction === 'desc' ? 'DESC' : 'ASC'}`
  })
  // id last keeps paging stable when the sort key has ties
  order.push('id ASC')
  return order.join(', ')
}

/**
 * One page per parent, in one statement: the rows whose `parentColumn` is each of `parentIds`, each
 * parent's filtered, ordered and paged on its own (GraphQL's Queue.messages(where, orderBy, limit,
 * offset)). Each row says its parent in "parentId"; each parent is an index range on its column.
 */
export function pagesOfParents (entity: Entity, parentColumn: string, parentIds: readonly number[], q: ListQuery):
Statement {
  const values: unknown[] = [[...new Set(parentIds)]]
  const conds = [`${parentColumn} = p.pid`, ...conditions(entity, q.where, values)]
  values.push(q.limit, q.offset)
  return {
    text: `SELECT p.pid AS "parentId", x.* FROM unnest($1::bigint[]) AS p(pid)
      CROSS JOIN LATERAL (SELECT ${entity.select} FROM ${entity.table} WHERE ${conds.join(' AND ')}
        ORDER BY ${orderClause(entity, q.orderBy)} LIMIT $${values.length - 1} OFFSET $${values.length}) AS x`,
    values
  }
}

export function listStatement (entity: Entity, q: ListQuery): Statement {
  const values: unknown[] = []
  const where = whereClause(entity, q.where, values)
  const order = [orderClause(entity, q.orderBy)]
  values.push(q.limit, q.offset)
  return {
    text: `SELECT ${entity.select} FROM ${entity.table} ${where}
      ORDER BY ${order.join(', ')} LIMIT $${values.length - 1} OFFSET $${values.length}`,
    values
  }
}

export function countStatement (entity: Entity, filters: Filter[]): Statement {
  const values: unknown[] = []
  const where = whereClause(entity, filters, values)
  return { text: `SELECT count(*)::bigint AS n FROM ${entity.table} ${where}`, values }
}

export function idsStatement (entity: Entity, filters: Filter[], limit: number): Statement {
  const values: unknown[] = []
  const where = whereClause(entity, filters, values)
  values.push(limit)
  return { text: `SELECT id FROM ${entity.table} ${where} ORDER BY id LIMIT $${values.length}`, values }
}

/** The ids of the rows a filter matches, at most `limit` of them, in id order. */
export async function matchingIds (
  pool: Queryable, entity: Entity, filters: Filter[], limit: number
): Promise<number[]> {
  return (await read<{ id: number }>(pool, idsStatement(entity, filters, limit))).rows.map(r => r.id)
}

export function filterableFields (entity: Entity): Array<[string, FieldDef]> {
  return Object.entries(entity.fields).filter(([, d]) => d.filter === true)
}

export function sortableFields (entity: Entity): string[] {
  return Object.entries(entity.fields).filter(([, d]) => d.sort === true).map(([k]) => k)
}
