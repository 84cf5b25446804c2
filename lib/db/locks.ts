// Every advisory lock key hookpost takes, so that no two can collide. pg_locks keeps the two key
// spaces apart: a single bigint key (objsubid 1) and a pair of ints (objsubid 2). The leader's key is
// the only bigint one, and it is configurable (hooks.lock, pg-hooks' default 42); every other key is a
// pair whose first int spells "hoo?" in ASCII, so a site's own advisory locks are unlikely to meet it.

/** the leader's key unless hooks.lock says otherwise: pg-hooks' default, so the two never lead at once */
export const DEFAULT_LEADER_LOCK = 42
/** (WORKER_LOCK_CLASS, hashtext(workerId)): held by each delivering process on its LISTEN connection */
export const WORKER_LOCK_CLASS = 0x686f6f6c
/** held shared by every process with GraphQL subscribers (lib/db/listener.ts) */
export const SUBSCRIBERS_LOCK = [0x686f6f6d, 1] as const
/** held by the migration runner while it applies migrations (lib/db/migrate.ts) */
export const MIGRATE_LOCK = [0x686f6f6b, 1] as const

/** A bigint advisory key as pg_locks shows it: high 32 bits in classid, low in objid. */
export function lockKeyParts (key: number): [number, number] {
  const k = BigInt.asUintN(64, BigInt(key))
  return [Number(k >> 32n), Number(k & 0xffffffffn)]
}
