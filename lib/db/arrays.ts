// Array parameters for set-based statements (unnest, = ANY) on the hot paths.

/**
 * A PostgreSQL array literal for a statement parameter. pg builds the same text itself, but quotes and
 * runs two regex replacements over every element, numbers included: in the worker's flush (10 arrays of
 * a few hundred elements) and the grouped enqueue that was a visible share of the CPU.
 */
export function arrayLiteral (values: ReadonlyArray<string | number | boolean | null | undefined>): string {
  // ids, durations and times: all finite numbers, joined natively
  if (values.every(v => typeof v === 'number' && Number.isFinite(v))) return '{' + values.join(',') + '}'
  let out = '{'
  for (let i = 0; i < values.length; i++) {
    const v = values[i]
    if (i > 0) out += ','
    if (v === null || v === undefined) out += 'NULL'
    else if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw new TypeError(`arrayLiteral: ${v} is not a finite number`)
      out += String(v)
    } else if (typeof v === 'boolean') out += v ? 't' : 'f'
    else out += '"' + (v.includes('\\') || v.includes('"') ? v.replace(/[\\"]/g, '\\$&') : v) + '"'
  }
  return out + '}'
}
