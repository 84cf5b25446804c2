// Input validation for callers that do not come through a Fastify route (GraphQL): the same JSON
// schemas as REST, compiled with the same Ajv settings, and the same error messages.
import { Ajv, type ValidateFunction } from 'ajv'
import addFormats from 'ajv-formats'
import { formatSchemaErrors } from './http/error-handler.js'

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
  if (!fn(value)) throw formatSchemaErrors(fn.errors as any, dataVar)
  return value as T
}
