// Input validation, the same for both transports: REST's routes validate with Fastify's Ajv and report
// through formatSchemaErrors (app.ts's schemaErrorFormatter); GraphQL validates its inputs here with
// the same JSON schemas and settings. A schema failure is HOOKPOST_ERR_BAD_REQUEST naming the field.
import { Ajv, type ValidateFunction } from 'ajv'
import addFormats from 'ajv-formats'
import { errors } from '../errors.js'

const READ_ONLY = new Set(['id', 'sentAt', 'failed', 'retries', 'attempts', 'createdAt', 'updatedAt', 'nextAttemptAt',
  'lastStatus', 'lastError', 'cronId', 'deadLetterOf', 'nextTickAt', 'lastTickAt'])

interface AjvError { keyword: string, instancePath: string, message?: string, params: Record<string, any> }

/** Validation messages that always name the field, including the one that should not be there. */
export function formatSchemaErrors (errs: AjvError[], dataVar: string): Error {
  const e = errs[0]!
  const path = `${dataVar}${e.instancePath}`
  let message: string
  if (e.keyword === 'additionalProperties') {
    const prop = String(e.params.additionalProperty)
    message = READ_ONLY.has(prop) && (dataVar === 'body' || dataVar === 'input')
      ? `${path}/${prop} is read-only and cannot be set`
      : `${path}/${prop} is not an allowed property`
  } else if (e.keyword === 'propertyNames') {
    message = `${path} has an invalid property name ${JSON.stringify(e.params.propertyName)}`
  } else if (e.keyword === 'pattern' && path.includes('/headers/')) {
    message = `${path} must be printable latin-1 text: no CR, LF, NUL or characters past U+00FF`
  } else {
    message = `${path} ${e.message ?? 'is invalid'}`
  }
  return new errors.HOOKPOST_ERR_BAD_REQUEST(message)
}

// fastify's defaults, less coercion: GraphQL has already typed every value
const ajv = new Ajv({ removeAdditional: false, useDefaults: true, coerceTypes: false, allErrors: false, strict: false })
;(addFormats as unknown as (a: Ajv) => void)(ajv)

const compiled = new WeakMap<object, ValidateFunction>()

/** Throws a 400 naming the field, as a REST route would; dataVar names the argument ("input"). */
export function validate<T> (schema: object, value: unknown, dataVar: string): T {
  let fn = compiled.get(schema)
  if (fn === undefined) {
    fn = ajv.compile(schema)
    compiled.set(schema, fn)
  }
  if (!fn(value)) throw formatSchemaErrors(fn.errors as AjvError[], dataVar)
  return value as T
}

/** A row id (a GraphQL ID is a string): what REST's `params/id` schema accepts, with its error. */
export function toId (value: unknown, field: string): number {
  const s = typeof value === 'number' ? String(value) : typeof value === 'string' ? value : ''
  if (!/^\d{1,16}$/.test(s)) throw new errors.HOOKPOST_ERR_BAD_REQUEST(`${field} must be integer`)
  const n = Number(s)
  if (n < 1) throw new errors.HOOKPOST_ERR_BAD_REQUEST(`${field} must be >= 1`)
  if (n > Number.MAX_SAFE_INTEGER) {
    throw new errors.HOOKPOST_ERR_BAD_REQUEST(`${field} must be <= ${Number.MAX_SAFE_INTEGER}`)
  }
  return n
}
