// The SSRF policy of lib/domain/ssrf.ts where DNS is involved: when a queue is saved (an early, friendly 400)
// and when a delivery connects (the check that counts: DNS may have changed since, by accident or by
// a rebinding attack).
import { promises as dns, type LookupAddress, type LookupOptions } from 'node:dns'
import { isIP, type LookupFunction } from 'node:net'
import { errors } from '../errors.js'
import { checkAddress, checkUrl, hostToResolve, type TargetPolicy } from './ssrf.js'

/** every address of a host name, as the system resolver (getaddrinfo, /etc/hosts included) sees it */
export type ResolveAll = (hostname: string, options: LookupOptions) => Promise<LookupAddress[]>

const resolveAll: ResolveAll = async (hostname, options) => await dns.lookup(hostname, { ...options, all: true })

// A save waits this long at most for DNS. A name that has not answered by then is accepted: the
// connect-time check still applies, and a slow resolver must not make the API slow.
const SAVE_LOOKUP_TIMEOUT_MS = 2000

async function within<R> (ms: number, p: Promise<R>, fallback: R): Promise<R> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<R>((resolve) => { timer = setTimeout(() => resolve(fallback), ms) })
  try {
    return await Promise.race([p, late])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Save time: a 400 (HOOKPOST_ERR_BLOCKED_TARGET, naming callbackUrl) for a URL the policy refuses.
 * A host name is refused only when every address it resolves to is blocked; one that does not resolve
 * is accepted, since it may be created later and is checked again at every connection.
 */
export async function assertAllowedTarget (
  url: string,
  policy: TargetPolicy,
  resolve: ResolveAll = resolveAll
): Promise<void> {
  const reason = checkUrl(url, policy)
  if (reason !== null) throw new errors.HOOKPOST_ERR_BLOCKED_TARGET('callbackUrl', reason)
  const host = hostToResolve(url)
  if (host === null) return
  const addresses = await within(SAVE_LOOKUP_TIMEOUT_MS, resolve(host, {}).catch(() => []), [])
  const reasons = addresses.map(a => checkAddress(a.address, policy))
  if (reasons.length > 0 && reasons.every(r => r !== null)) {
    throw new errors.HOOKPOST_ERR_BLOCKED_TARGET(
      'callbackUrl', `${host} resolves only to blocked addresses: ${reasons[0]}`
    )
  }
}

/**
 * Connect time: the lookup an undici Agent gives net.connect. Every address is checked, and one that
 * is blocked fails the connection rather than being skipped: a name that mixes public and internal
 * addresses is a mistake or an attack, and either way the attempt log should say so.
 */
export function guardedLookup (policy: TargetPolicy, resolve: ResolveAll = resolveAll): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname, options).then((addresses) => {
      if (addresses.length === 0) {
        const notFound = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname })
        return callback(notFound, '')
      }
      for (const a of addresses) {
        const reason = checkAddress(a.address, policy)
        if (reason !== null) {
          return callback(new errors.HOOKPOST_ERR_BLOCKED_TARGET(
            'callbackUrl', `${hostname} resolves to a blocked address: ${reason}`), ''
          )
        }
      }
      // net asks for every address when it races IPv4 and IPv6 (autoSelectFamily), else for one
      if (options.all === true) callback(null, addresses)
      else callback(null, addresses[0]!.address, addresses[0]!.family)
    }, (err: NodeJS.ErrnoException) => callback(err, ''))
  }
}

/**
 * Node connects to an IP-literal host without calling lookup, so guardedLookup never sees it: the
 * origin is checked before the request is dispatched. Returns why an origin is refused, or null.
 */
export function blockedLiteral (policy: TargetPolicy): (origin: string) => string | null {
  // the verdict on an origin never changes for a given policy: decide once, not per call (the check
  // builds SocketAddress objects, which cost more than the rest of the request)
  const verdicts = new Map<string, string | null>()
  return (origin) => {
    let reason = verdicts.get(origin)
    if (reason === undefined) {
      // only literals: a name, localhost included, is left to guardedLookup and what DNS says now
      const host = origin !== '' ? new URL(origin).hostname.replace(/^\[(.*)\]$/, '$1') : ''
      reason = isIP(host) !== 0 ? checkAddress(host, policy) : null
      if (verdicts.size >= 10_000) verdicts.clear()
      verdicts.set(origin, reason)
    }
    return reason
  }
}
