// A queue's signing secret: set (generated or given), rotated with a grace period, removed.
// The secret is shown when it is set and never listed with the queue.
import type { Pool } from 'pg'
import { write } from '../db/query.js'
import { errors } from '../errors.js'
import { generateSecret, secretBytes } from '../domain/signing.js'

export interface SigningSecret {
  queueId: number
  signingSecret: string
  /** until when the replaced secret keeps signing too; null when there was none */
  previousValidUntil: Date | null
}

/** The previous secret signs alongside the new one for a day unless told otherwise */
export const DEFAULT_GRACE_SECONDS = 86_400

export async function rotateSigningSecret (
  pool: Pool,
  queueId: number,
  opts: { secret?: string, graceSeconds?: number } = {}
): Promise<SigningSecret> {
  const secret = opts.secret ?? generateSecret()
  const bad = secretBytes(secret)
  if (typeof bad === 'string') throw new errors.HOOKPOST_ERR_INVALID_FIELD('secret', bad)
  const { rows } = await write(pool,
    `UPDATE hookpost.queues SET
       previous_signing_secret = signing_secret,
       previous_signing_secret_until =
         CASE WHEN signing_secret IS NULL THEN NULL ELSE now() + $3 * interval '1 second' END,
       signing_secret = $2, updated_at = now()
     WHERE id = $1
     RETURNING previous_signing_secret_until AS "previousValidUntil"`,
    [queueId, secret, opts.graceSeconds ?? DEFAULT_GRACE_SECONDS])
  if (rows[0] === undefined) throw new errors.HOOKPOST_ERR_NOT_FOUND('queue', queueId)
  return { queueId, signingSecret: secret, previousValidUntil: rows[0].previousValidUntil }
}

export async function removeSigningSecret (pool: Pool, queueId: number): Promise<{ queueId: number, signed: false }> {
  const { rowCount } = await write(pool,
    `UPDATE hookpost.queues
     SET signing_secret = NULL, previous_signing_secret = NULL, previous_signing_secret_until = NULL, updated_at = now()
     WHERE id = $1`, [queueId])
  if (rowCount === 0) throw new errors.HOOKPOST_ERR_NOT_FOUND('queue', queueId)
  return { queueId, signed: false }
}
