// Input validation, the same for both transports: REST's routes validate through validatorCompiler
// (app.ts) and report through formatSchemaErrors (app.ts's schemaErrorFormatter); GraphQL validates its
// inputs here with the same JSON schemas and settings. A JSON body is taken as sent, never coerced: the
// one allowance is a decimal string in an integer field. A schema failure is HOOKPOST_ERR_BAD_REQUEST
// naming the field.
import { Ajv, type ValidateFunction } from 'ajv'
import addFormats from 'ajv-formats'
import { fullFormats } from 'ajv-formats/dist/formats.js'
import { errors } from '../errors.js'
import { dateTimeProblem } from './date-time.js'

/** A string field's pattern when nothing else constrains it: PostgreSQL's text cannot hold a NUL. */
export const NO_NUL = '^[^\\u0000]*$'

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
  } else if (e.keyword === 'pattern' && e.params.pattern === NO_NUL) {
    message = `${path} must not contain a NUL (\\u0000) character`
  } else if (e.keyword === 'pattern' && path.includes('/headers/')) {
    message = `${path} must be printable latin-1 text: no CR, LF, NUL or characters past U+00FF`
  } else {
    message = `${path} ${e.message ?? 'is invalid'}`
  }
  return new errors.HOOKPOST_ERR_BAD_REQUEST(message)
}

const rfc3339 = (fullFormats['date-time'] as { validate: (s: string) => boolean }).validate

/** ajv-formats, with "date-time" also refusing what PostgreSQL's timestamptz cannot store (year 0, +16:00) */
function withFormats (a: Ajv): Ajv {
  ;(addFormats as unknown as (a: Ajv) => void)(a)
  a.addFormat('date-time', { type: 'string', validate: (s: string) => rfc3339(s) && dateTimeProblem(s) === undefined })
  return a
}

// fastify's defaults, less coercion: a JSON body (REST) is taken as sent, and GraphQL has typed every value
const ajv = withFormats(new Ajv({
  removeAdditional: false, useDefaults: true, coerceTypes: false, allErrors: false, strict: false
}))
// the querystring, params and headers are text by nature: coerced as Fastify does, from plain integers only
const coercing = withFormats(new Ajv({
  removeAdditional: false, useDefaults: true, coerceTypes: 'array', allErrors: false, strict: false
}))

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

// the one text a JSON body may give for an integer (pg-hooks clients, and GraphQL IDs, send "3"):
// plain decimal, below 2^53; "0x10", " ", "1e1", "Infinity" are refused, as GraphQL refuses them
const DECIMAL_BODY = /^-?[0-9]{1,15}$/
// in a querystring or path, where every value is text: what the schema's bounds then check
const DECIMAL_TEXT = /^-?[0-9]{1,16}$/

interface ObjectSchema { properties?: Record<string, { type?: unknown }> }

/** The top-level properties a schema types as integers (nullable ones included). */
function integerFields (schema: unknown): string[] {
  const props = (schema as ObjectSchema | null)?.properties ?? {}
  return Object.keys(props).filter((k) => {
    const type = props[k]?.type
    return type === 'integer' || (Array.isArray(type) && type.includes('integer'))
  })
}

interface SchemaError {
  keyword: string, instancePath: string, schemaPath: string, params: Record<string, unknown>, message?: string
}
/** what Fastify's validator compiler returns: errors after a false */
type Validator = ((data: unknown) => boolean) & { errors?: SchemaError[] | null }

function isRecord (data: unknown): data is Record<string, unknown> {
  return data !== null && typeof data === 'object' && !Array.isArray(data)
}

// Fastify hands the compiler a fresh copy of a route's schema for every app it builds; compiled once per
// distinct schema text instead, so building an app (every test builds dozens) skips ajv's code generation.
// Bounded: the routes' schemas are fixed.
const byText = new Map<string, ValidateFunction>()
function compileOnce (a: Ajv, schema: object): ValidateFunction {
  const key = (a === ajv ? 'b' : 't') + JSON.stringify(schema)
  let fn = byText.get(key)
  if (fn === undefined) {
    fn = a.compile(schema)
    byText.set(key, fn)
  }
  return fn
}

/** A body: no coercion, but a decimal string in an integer field is read as its number. */
function bodyValidator (schema: object): Validator {
  const fn = compileOnce(ajv, schema)
  const ints = integerFields(schema)
  const check: Validator = (data) => {
    if (isRecord(data)) {
      for (const k of ints) {
        const v = data[k]
        if (typeof v === 'string' && DECIMAL_BODY.test(v)) data[k] = Number(v)
      }
    }
    const ok = fn(data)
    check.errors = fn.errors
    return ok
  }
  return check
}

/** The querystring, params, headers: coerced, but an integer only from decimal digits ("0x10", " " are not 16, 0). */
function textValidator (schema: object): Validator {
  const fn = compileOnce(coercing, schema)
  const ints = integerFields(schema)
  const check: Validator = (data) => {
    if (isRecord(data)) {
      for (const k of ints) {
        const v = data[k]
        const values = Array.isArray(v) ? v : [v]
        if (values.some(x => typeof x === 'string' && !DECIMAL_TEXT.test(x))) {
          check.errors = [{
            keyword: 'type',
            instancePath: `/${k}`,
            schemaPath: `#/properties/${k}/type`,
            params: { type: 'integer' },
            message: 'must be integer'
          }]
          return false
        }
      }
    }
    const ok = fn(data)
    check.errors = fn.errors
    return ok
  }
  return check
}

/** Fastify's validator compiler (app.ts): request bodies without type coercion, the rest as text. */
export function validatorCompiler ({ schema, httpPart }: { schema: object, httpPart?: string }): Validator {
  return httpPart === 'body' ? bodyValidator(schema) : textValidator(schema)
}

/**
 * A JSON Schema a client stores (an event type's payload schema), compiled to check values against it.
 * Each on its own ajv instance, so that one schema's $id can never clash with, or be referred to by,
 * another's; references outside the schema do not resolve (nothing is fetched). A schema ajv refuses is
 * a 400 naming `field`.
 */
export function compileUserSchema (schema: unknown, field: string): ValidateFunction {
  try {
    return withFormats(new Ajv({ allErrors: false, strict: false, coerceTypes: false, useDefaults: false }))
      .compile(schema as object)
  } catch (err) {
    throw new errors.HOOKPOST_ERR_INVALID_FIELD(field,
      `not a valid JSON Schema: ${String((err as Error).message).slice(0, 300)}`)
  }
}

/**
 * A value against a compiled user schema: a 400 that names the path inside dataVar ("payload/items/0").
 * A schema that recurses without end ({"$ref": "#"}) overflows the stack: that is a 400 too, not a 500.
 */
export function checkAgainst (fn: ValidateFunction, value: unknown, dataVar: string): void {
  let ok: boolean
  try {
    ok = fn(value) as boolean
  } catch (err) {
    if (!(err instanceof RangeError)) throw err
    throw new errors.HOOKPOST_ERR_INVALID_FIELD(dataVar,
      'its schema could not be evaluated: it refers to itself without end')
  }
  if (!ok) throw formatSchemaErrors(fn.errors as AjvError[], dataVar)
}
