// A message body is given either as a string (pg-hooks' way: sent byte for byte) or as a JSON value
// (sent as its JSON text). We store the text to send plus a flag, so reads give back what was written.

export interface StoredBody { body: string | null, bodyJson: boolean }

export function toStored (body: unknown): StoredBody {
  if (body === undefined || body === null) return { body: null, bodyJson: false }
  if (typeof body === 'string') return { body, bodyJson: false }
  return { body: JSON.stringify(body), bodyJson: true }
}

export function fromStored (body: string | null, bodyJson: boolean): unknown {
  if (body === null) return null
  return bodyJson ? JSON.parse(body) : body
}

/** JSON schema for a body: anything JSON can say. */
export const bodySchema = {
  description: 'sent as-is when a string; sent as its JSON text when any other JSON value'
} as const
