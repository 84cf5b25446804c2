// REST list parameters (Platformatic's): limit, offset, totalCount, where.<field>.<op>, orderby.<field>.
// Turned into the ListQuery that REST and GraphQL share.
import { errors } from '../errors.js'
import { FILTER_OPS, MAX_LIMIT, filterableFields, sortableFields, type Entity, type FieldType, type Filter, type ListQuery } from '../store/list.js'

export function listQuerySchema (entity: Entity) {
  const properties: Record<string, unknown> = {
    limit: { type: 'integer', minimum: 0, maximum: MAX_LIMIT, default: MAX_LIMIT, description: `at most ${MAX_LIMIT}` },
    offset: { type: 'integer', minimum: 0, maximum: 2_147_483_647, default: 0 },
    totalCount: { type: 'boolean', default: false, description: 'put the total number of matching rows in the X-Total-Count header' }
  }
  for (const [field, def] of filterableFields(entity)) {
    for (const op of FILTER_OPS) {
      properties[`where.${field}.${op}`] = {
        type: 'string',
        maxLength: 10_000,
        description: op === 'in' || op === 'nin' ? `comma-separated ${def.type} values` : `${def.type}${op === 'eq' || op === 'neq' ? ', or null' : ''}`
      }
    }
  }
  for (const field of sortableFields(entity)) {
    properties[`orderby.${field}`] = { type: 'string', enum: ['asc', 'desc'] }
  }
  return { type: 'object', properties, additionalProperties: false }
}

const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/

export function parseFilterValue (param: string, type: FieldType, raw: string): unknown {
  switch (type) {
    case 'integer': {
      if (!/^-?\d{1,18}$/.test(raw)) throw new errors.InvalidField(param, `expected an integer, got ${JSON.stringify(raw)}`)
      return Number(raw)
    }
    case 'boolean':
      if (raw !== 'true' && raw !== 'false') throw new errors.InvalidField(param, `expected true or false, got ${JSON.stringify(raw)}`)
      return raw === 'true'
    case 'date-time': {
      // ISO 8601 only: Date() alone accepts trailing junk such as "2024-01-01 (x)"
      const d = new Date(raw)
      if (Number.isNaN(d.getTime()) || !ISO_DATE_TIME.test(raw)) throw new errors.InvalidField(param, `expected an ISO 8601 date-time, got ${JSON.stringify(raw)}`)
      return d.toISOString()
    }
    default:
      return raw
  }
}

export function parseListQuery (entity: Entity, query: Record<string, unknown>): ListQuery & { totalCount: boolean } {
  const where: Filter[] = []
  const orderBy: ListQuery['orderBy'] = []
  for (const [key, value] of Object.entries(query)) {
    const parts = key.split('.')
    if (parts[0] === 'where' && parts.length === 3) {
      const field = parts[1]!
      const op = parts[2] as Filter['op']
      const def = entity.fields[field]!
      const raw = String(value)
      if (op === 'in' || op === 'nin') {
        where.push({ field, op, value: raw === '' ? [] : raw.split(',').map(v => parseFilterValue(key, def.type, v)) })
      } else if (raw === 'null' && (op === 'eq' || op === 'neq')) {
        where.push({ field, op, value: null })
      } else {
        where.push({ field, op, value: parseFilterValue(key, def.type, raw) })
      }
    } else if (parts[0] === 'orderby' && parts.length === 2) {
      orderBy.push({ field: parts[1]!, direction: value === 'desc' ? 'desc' : 'asc' })
    }
  }
  return {
    limit: (query.limit as number | undefined) ?? MAX_LIMIT,
    offset: (query.offset as number | undefined) ?? 0,
    totalCount: query.totalCount === true,
    where,
    orderBy
  }
}
