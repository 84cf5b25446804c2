// Which addresses a webhook may be sent to: pure checks, no DNS. A queue's callbackUrl is chosen by
// whoever can call the API, so without this hookpost would fetch cloud metadata or internal services
// for them (SSRF). lib/domain/ssrf-guard.ts applies these checks at save time and at connect time.
import { BlockList, isIP } from 'node:net'

export interface TargetPolicy {
  /** loopback, RFC 1918, unique-local and CGNAT addresses may be targets */
  readonly allowPrivateNetworks: boolean
  /** CIDRs or addresses always allowed, over every block (an internal service, say) */
  readonly ssrfAllow: readonly string[]
}

/** What config resolves to outside production; the default for callers that pass no policy (benchmarks). */
export const DEVELOPMENT_POLICY: TargetPolicy = Object.freeze({
  allowPrivateNetworks: true,
  ssrfAllow: Object.freeze([])
})

type Family = 'ipv4' | 'ipv6'

interface Category { label: string, list: BlockList }

function category (label: string, cidrs: string[]): Category {
  const list = new BlockList()
  for (const c of cidrs) {
    const p = parseCidr(c)!
    list.addSubnet(p.address, p.prefix, p.family)
  }
  return { label, list }
}

// Never a webhook target whatever allowPrivateNetworks says: no receiver lives there, and the cloud
// metadata services (credentials!) do. Checked before PRIVATE, which contains two of them.
const ALWAYS_BLOCKED: Category[] = [
  category('an unspecified address', ['0.0.0.0/8', '::/128']),
  category('a cloud metadata address', ['100.100.100.200/32', 'fd00:ec2::254/128']),
  category('a link-local address (where cloud metadata services answer)', ['169.254.0.0/16', 'fe80::/10']),
  category('a multicast address', ['224.0.0.0/4', 'ff00::/8']),
  category('the broadcast address', ['255.255.255.255/32']),
  category('a reserved address', ['240.0.0.0/4']),
  // DS-Lite, NAT64 discovery (192.0.0.170) and the like. IANA lists 192.0.0.9 and 192.0.0.10 as globally
  // reachable, but they are anycast protocol services (PCP, TURN), not webhook receivers: the /24 is blocked
  category('an IETF protocol assignments address', ['192.0.0.0/24']),
  category('a discard-only address', ['100::/64']),
  // the examples of RFCs; a network that routes them uses them as private space
  category('a documentation address',
    ['192.0.2.0/24', '198.51.100.0/24', '203.0.113.0/24', '2001:db8::/32', '3fff::/20'])
]

const PRIVATE: Category[] = [
  category('a loopback address', ['127.0.0.0/8', '::1/128']),
  category('a private (RFC 1918) address', ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16']),
  category('a unique-local address', ['fc00::/7']),
  // deprecated (RFC 3879); where still configured it is private space, as fc00::/7 is now
  category('a site-local address', ['fec0::/10']),
  category('a shared (CGNAT) address', ['100.64.0.0/10']),
  // lab networks, not the internet. Not always blocked: proxies in fake-IP mode (Clash and the like)
  // answer every name with an address in 198.18.0.0/15, so a development machine behind one sees them
  category('a benchmarking address', ['198.18.0.0/15', '2001:2::/48'])
]

export interface Cidr { address: string, prefix: number, family: Family }

/** "10.0.0.0/8", "fd00::/8" or a bare address (a /32 or /128); null when it is neither. */
export function parseCidr (text: string): Cidr | null {
  const [raw, prefixText, extra] = text.trim().split('/')
  if (raw === undefined || extra !== undefined) return null
  const address = raw.replace(/^\[(.*)\]$/, '$1')
  const v = isIP(address)
  if (v === 0 || address.includes('%')) return null
  const max = v === 4 ? 32 : 128
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) return null
  const prefix = prefixText === undefined ? max : Number(prefixText)
  if (prefix > max) return null
  return { address, prefix, family: v === 4 ? 'ipv4' : 'ipv6' }
}

// the allow list of a policy, compiled once per (frozen, long-lived) list
const allowLists = new WeakMap<readonly string[], BlockList>()

function allowListOf (policy: TargetPolicy): BlockList {
  let list = allowLists.get(policy.ssrfAllow)
  if (list === undefined) {
    list = new BlockList()
    for (const entry of policy.ssrfAllow) {
      const p = parseCidr(entry)
      if (p !== null) list.addSubnet(p.address, p.prefix, p.family)
    }
    allowLists.set(policy.ssrfAllow, list)
  }
  return list
}

/** The 8 16-bit words of a valid IPv6 address (a trailing dotted quad included). */
function ipv6Words (address: string): number[] {
  const hex = address.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_, a: string, b: string, c: string, d: string) =>
    `${((+a << 8) | +b).toString(16)}:${((+c << 8) | +d).toString(16)}`)
  const [head, tail] = hex.split('::') as [string, string | undefined]
  const words = (s: string | undefined): number[] =>
    (s === undefined || s === '') ? [] : s.split(':').map(w => parseInt(w, 16))
  const h = words(head)
  const t = words(tail)
  return [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t]
}

/**
 * The IPv4 addresses an IPv6 one carries, and which a connection to it reaches: IPv4-mapped
 * ::ffff:a.b.c.d (what a dual-stack socket connects to as IPv4), IPv4-translated ::ffff:0:a.b.c.d,
 * NAT64 64:ff9b::/96 and its local-use 64:ff9b:1::/48, the deprecated IPv4-compatible ::a.b.c.d,
 * 6to4 2002:V4ADDR::/48, and Teredo (its server and its client). Each is checked as the IPv4 address
 * it reaches, so ::ffff:a9fe:a9fe is 169.254.169.254. Empty when the address carries none. NAT64 under
 * an operator's own prefix (RFC 6052) cannot be recognised from the address alone.
 */
function embeddedIpv4 (address: string): string[] {
  const w = ipv6Words(address)
  const zero = (from: number, to: number): boolean => w.slice(from, to).every(x => x === 0)
  const ipv4 = (hi: number, lo: number): string => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`
  const last32 = ipv4(w[6]!, w[7]!)
  if (zero(0, 5) && w[5] === 0xffff) return [last32] // IPv4-mapped
  if (zero(0, 4) && w[4] === 0xffff && w[5] === 0) return [last32] // IPv4-translated (RFC 2765)
  // 64:ff9b:1::/48 (RFC 8215) is carved into translation prefixes by each operator; read as the /96
  // format of RFC 6052, the one 64:ff9b::/96 uses and the usual choice
  if (w[0] === 0x64 && w[1] === 0xff9b && (zero(2, 6) || w[2] === 1)) return [last32]
  // :: and ::1 are IPv6's own unspecified and loopback addresses, not IPv4-compatible ones
  if (zero(0, 6) && !(w[6] === 0 && (w[7] === 0 || w[7] === 1))) return [last32]
  if (w[0] === 0x2002) return [ipv4(w[1]!, w[2]!)] // 6to4 (RFC 3056)
  // Teredo (RFC 4380): the server in bits 32-63, the client's public address inverted in the last 32;
  // packets go to the client and bubbles to the server
  if (w[0] === 0x2001 && w[1] === 0) return [ipv4(w[2]!, w[3]!), ipv4(w[6]! ^ 0xffff, w[7]! ^ 0xffff)]
  return []
}

/** why policy refuses address, or null; shown names it in the reason */
function verdict (address: string, family: Family, shown: string, policy: TargetPolicy): string | null {
  if (allowListOf(policy).check(address, family)) return null
  for (const c of ALWAYS_BLOCKED) {
    if (c.list.check(address, family)) return `${shown} is ${c.label}; only HOOKPOST_SSRF_ALLOW can allow it`
  }
  if (!policy.allowPrivateNetworks) {
    for (const c of PRIVATE) {
      if (c.list.check(address, family)) {
        return `${shown} is ${c.label}, and private networks are not allowed (HOOKPOST_ALLOW_PRIVATE_NETWORKS)`
      }
    }
  }
  return null
}

/** null when the policy allows connecting to ip; otherwise why not. */
export function checkAddress (ip: string, policy: TargetPolicy): string | null {
  // a zone (fe80::1%eth0) does not change which network the address is on
  const bare = ip.replace(/^\[(.*)\]$/, '$1').replace(/%.*$/, '')
  const v = isIP(bare)
  if (v === 0) return `${ip} is not an IP address`
  if (v === 4) return verdict(bare, 'ipv4', ip, policy)
  const inner = embeddedIpv4(bare)
  if (inner.length === 0) return verdict(bare, 'ipv6', ip, policy)
  // listing the IPv6 address (or its prefix) itself allows it too
  if (allowListOf(policy).check(bare, 'ipv6')) return null
  for (const a of inner) {
    const reason = verdict(a, 'ipv4', `${ip} (${a})`, policy)
    if (reason !== null) return reason
  }
  return null
}

/** localhost and *.localhost are loopback by definition (RFC 6761), whatever DNS would say. */
function isLocalhost (host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '')
  return h === 'localhost' || h.endsWith('.localhost')
}

function hostOf (url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1')
}

/**
 * null when url may be a target as far as can be told without DNS: http or https, and an IP-literal
 * or localhost host that the policy allows. A host name passes here; its addresses are checked once
 * resolved (lib/domain/ssrf-guard.ts).
 */
export function checkUrl (url: string, policy: TargetPolicy): string | null {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return `${JSON.stringify(url)} is not a valid URL`
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    return `only http and https targets are allowed, not ${u.protocol.slice(0, -1)}`
  }
  const host = hostOf(u)
  if (isIP(host) !== 0) return checkAddress(host, policy)
  if (isLocalhost(host)) {
    // it may resolve to either loopback address: refused only when both are
    const v4 = checkAddress('127.0.0.1', policy)
    return v4 !== null && checkAddress('::1', policy) !== null ? `${host} is loopback: ${v4}` : null
  }
  return null
}

/** The host name of url that DNS has to resolve before it can be checked; null for an IP literal or localhost. */
export function hostToResolve (url: string): string | null {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return null
  }
  const host = hostOf(u)
  return isIP(host) !== 0 || isLocalhost(host) ? null : host
}
