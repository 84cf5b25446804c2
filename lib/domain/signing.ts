// Standard Webhooks signatures (https://www.standardwebhooks.com): pure functions.
// A secret is "whsec_" + base64 of 24 to 64 random bytes; the signature of a delivery is
// "v1," + base64(HMAC-SHA256(secret bytes, "<webhook-id>.<webhook-timestamp>.<body>")).
import { createHmac, randomBytes } from 'node:crypto'

export const SECRET_PREFIX = 'whsec_'
const MIN_BYTES = 24
const MAX_BYTES = 64
// 32 bytes, the size of the HMAC-SHA256 key block's natural half and what most providers issue
const GENERATED_BYTES = 32

export function generateSecret (): string {
  return SECRET_PREFIX + randomBytes(GENERATED_BYTES).toString('base64')
}

/** The key bytes of a secret, or a reason it is not one. */
export function secretBytes (secret: string): Buffer | string {
  if (!secret.startsWith(SECRET_PREFIX)) return `must start with ${SECRET_PREFIX}`
  const b64 = secret.slice(SECRET_PREFIX.length)
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.length % 4 !== 0) return `must be ${SECRET_PREFIX} followed by base64`
  const bytes = Buffer.from(b64, 'base64')
  if (bytes.length < MIN_BYTES || bytes.length > MAX_BYTES) {
    return `must encode ${MIN_BYTES} to ${MAX_BYTES} bytes, got ${bytes.length}`
  }
  return bytes
}

export function sign (secret: string, id: string, timestamp: number, body: string): string {
  const key = secretBytes(secret)
  if (typeof key === 'string') throw new Error(`invalid signing secret: ${key}`)
  return 'v1,' + createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')
}

/** The three headers; during a rotation both secrets sign, space-separated, the current one first. */
export function signatureHeaders (
  secrets: string[],
  id: string,
  timestamp: number,
  body: string
): Record<string, string> {
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': secrets.map(s => sign(s, id, timestamp, body)).join(' ')
  }
}
