import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { ConfigError, loadConfig } from '../lib/config.js'
import { assertAllowedTarget, blockedLiteral, guardedLookup, type ResolveAll } from '../lib/domain/ssrf-guard.js'
import { checkAddress, checkUrl, hostToResolve, parseCidr, type TargetPolicy } from '../lib/domain/ssrf.js'
import { eventually, receiver, testApp, testPool, type ConfigOverrides } from './helpers.js'

const DEV: TargetPolicy = { allowPrivateNetworks: true, ssrfAllow: [] }
const PROD: TargetPolicy = { allowPrivateNetworks: false, ssrfAllow: [] }

// [address, blocked in development (private allowed), blocked in production (private refused)]
const ADDRESSES: Array<[string, boolean, boolean]> = [
  ['93.184.215.14', false, false],
  ['2606:2800:21f:cb07:6820:80da:af6b:8b2c', false, false],
  ['8.8.8.8', false, false],
  // private networks: a matter of policy
  ['127.0.0.1', false, true],
  ['127.255.255.254', false, true],
  ['::1', false, true],
  ['10.1.2.3', false, true],
  ['172.16.0.1', false, true],
  ['172.31.255.255', false, true],
  ['172.32.0.1', false, false],
  ['192.168.1.1', false, true],
  ['fc00::1', false, true],
  ['fdff:ffff::1', false, true],
  ['100.64.0.1', false, true],
  ['100.127.255.255', false, true],
  ['100.128.0.1', false, false],
  // always blocked: link-local and cloud metadata
  ['169.254.169.254', true, true],
  ['169.254.0.1', true, true],
  ['fe80::1', true, true],
  ['fe80::1%eth0', true, true],
  ['febf::1', true, true],
  ['fd00:ec2::254', true, true],
  ['100.100.100.200', true, true],
  // unspecified, broadcast, multicast, reserved
  ['0.0.0.0', true, true],
  ['0.1.2.3', true, true],
  ['::', true, true],
  ['255.255.255.255', true, true],
  ['224.0.0.1', true, true],
  ['239.255.255.250', true, true],
  ['ff02::1', true, true],
  ['240.0.0.1', true, true],
  // IPv4 inside IPv6: checked as the IPv4 address they reach
  ['::ffff:169.254.169.254', true, true],
  ['::ffff:a9fe:a9fe', true, true],
  ['::FFFF:A9FE:A9FE', true, true],
  ['0:0:0:0:0:ffff:a9fe:a9fe', true, true],
  ['[::ffff:a9fe:a9fe]', true, true],
  ['::ffff:127.0.0.1', false, true],
  ['::ffff:7f00:1', false, true],
  ['::ffff:0:0', true, true],
  ['::ffff:8.8.8.8', false, false],
  ['64:ff9b::a9fe:a9fe', true, true],
  ['64:ff9b::808:808', false, false],
  ['::169.254.169.254', true, true],
  ['::7f00:1', false, true],
  // IPv4-translated ::ffff:0:a.b.c.d (RFC 2765), next to IPv4-mapped ::ffff:a.b.c.d
  ['::ffff:0:169.254.169.254', true, true],
  ['::ffff:0:a9fe:a9fe', true, true],
  ['::ffff:0:7f00:1', false, true],
  ['::ffff:0:808:808', false, false],
  // local-use NAT64 64:ff9b:1::/48 (RFC 8215): the IPv4 address in the last 32 bits, as in 64:ff9b::/96
  ['64:ff9b:1::a9fe:a9fe', true, true],
  ['64:ff9b:1:ffff::a00:1', false, true],
  ['64:ff9b:1::808:808', false, false],
  // 6to4 2002::/16: the IPv4 address in bits 16-47, whatever follows
  ['2002:a9fe:a9fe::', true, true],
  ['2002:a9fe:a9fe:1::1', true, true],
  ['2002:7f00:1::', false, true],
  ['2002:a00:1::1', false, true],
  ['2002:808:808::1', false, false],
  // Teredo 2001::/32: the server (bits 32-63) and the client (last 32 bits, inverted) are both reached
  ['2001:0:4136:e378:8000:63bf:5601:5601', true, true],
  ['2001:0:4136:e378:8000:63bf:80ff:fffe', false, true],
  ['2001:0:a00:1:8000:63bf:f7f7:f7f7', false, true],
  ['2001:0:a9fe:a9fe:8000:63bf:f7f7:f7f7', true, true],
  ['2001:0:4136:e378:8000:63bf:f7f7:f7f7', false, false],
  // deprecated site-local fec0::/10: IPv6's old private networks
  ['fec0::1', false, true],
  ['feff:ffff::1', false, true],
  // benchmarking 198.18.0.0/15 and 2001:2::/48: lab networks, not the internet
  ['198.18.0.1', false, true],
  ['198.19.255.255', false, true],
  ['198.17.255.255', false, false],
  ['198.20.0.1', false, false],
  ['2001:2::1', false, true],
  // IETF protocol assignments 192.0.0.0/24, discard-only 100::/64 and documentation: nothing to deliver to
  ['192.0.0.1', true, true],
  ['192.0.0.170', true, true],
  ['192.0.0.255', true, true],
  ['::ffff:192.0.0.8', true, true],
  ['192.0.1.1', false, false],
  ['191.255.255.255', false, false],
  ['100::1', true, true],
  ['192.0.2.1', true, true],
  ['198.51.100.7', true, true],
  ['203.0.113.9', true, true],
  ['2001:db8::1', true, true],
  ['3fff::1', true, true],
  // not an address at all
  ['example.com', true, true],
  ['', true, true]
]

t.test('checkAddress: the table', async (t) => {
  for (const [ip, dev, prod] of ADDRESSES) {
    t.equal(checkAddress(ip, DEV) !== null, dev, `${ip} ${dev ? 'blocked' : 'allowed'} with private networks allowed`)
    t.equal(checkAddress(ip, PROD) !== null, prod, `${ip} ${prod ? 'blocked' : 'allowed'} with private networks refused`)
  }
})

t.test('checkAddress: the allow list overrides every block, and only what it lists', async (t) => {
  const p: TargetPolicy = { allowPrivateNetworks: false, ssrfAllow: ['127.0.0.1/32', '10.20.0.0/16', '169.254.169.254', 'fd12::/16'] }
  t.equal(checkAddress('127.0.0.1', p), null)
  t.equal(checkAddress('::ffff:127.0.0.1', p), null, 'the mapped form of an allowed address is allowed')
  t.not(checkAddress('127.0.0.2', p), null, '/32 is one address')
  t.equal(checkAddress('10.20.3.4', p), null)
  t.not(checkAddress('10.21.0.1', p), null)
  t.equal(checkAddress('169.254.169.254', p), null, 'even metadata, when listed explicitly')
  t.not(checkAddress('169.254.169.253', p), null)
  t.equal(checkAddress('fd12::5', p), null)
  t.not(checkAddress('fd13::5', p), null)
})

t.test('checkAddress: the reason says what the address is and which setting would allow it', async (t) => {
  t.match(checkAddress('169.254.169.254', DEV), /^169\.254\.169\.254 is a link-local address .*HOOKPOST_SSRF_ALLOW/)
  t.match(checkAddress('::ffff:a9fe:a9fe', DEV), /^::ffff:a9fe:a9fe \(169\.254\.169\.254\) is a link-local/)
  t.match(checkAddress('100.100.100.200', DEV), /cloud metadata/)
  t.match(checkAddress('10.0.0.1', PROD), /private \(RFC 1918\).*HOOKPOST_ALLOW_PRIVATE_NETWORKS/)
  t.match(checkAddress('127.0.0.1', PROD), /loopback/)
  t.match(checkAddress('2002:a9fe:a9fe::', DEV), /^2002:a9fe:a9fe:: \(169\.254\.169\.254\) is a link-local/)
  t.match(checkAddress('::ffff:0:a9fe:a9fe', DEV), /^::ffff:0:a9fe:a9fe \(169\.254\.169\.254\) is a link-local/)
  t.match(checkAddress('64:ff9b:1::a00:1', PROD), /^64:ff9b:1::a00:1 \(10\.0\.0\.1\) is a private \(RFC 1918\)/)
  t.match(checkAddress('2001:0:4136:e378:8000:63bf:5601:5601', DEV), /\(169\.254\.169\.254\) is a link-local/, 'the Teredo client, de-obfuscated')
  t.match(checkAddress('fec0::1', PROD), /site-local.*HOOKPOST_ALLOW_PRIVATE_NETWORKS/)
  t.match(checkAddress('192.0.0.170', DEV), /IETF protocol assignments.*HOOKPOST_SSRF_ALLOW/)
  t.match(checkAddress('198.18.0.1', PROD), /benchmarking.*HOOKPOST_ALLOW_PRIVATE_NETWORKS/)
})

t.test('checkAddress: the allow list applies to the embedded IPv4 address and to the IPv6 address itself', async (t) => {
  t.equal(checkAddress('2002:a00:1::1', { allowPrivateNetworks: false, ssrfAllow: ['10.0.0.0/24'] }), null)
  t.equal(checkAddress('2002:a00:1::1', { allowPrivateNetworks: false, ssrfAllow: ['2002:a00:1::/48'] }), null)
  t.not(checkAddress('2002:a00:2::1', { allowPrivateNetworks: false, ssrfAllow: ['2002:a00:1::/48'] }), null)
  // a Teredo address reaches two hosts (here server 10.0.0.1, client 10.0.0.2): allowing one is not enough
  t.not(checkAddress('2001:0:a00:1:8000:63bf:f5ff:fffd', { allowPrivateNetworks: false, ssrfAllow: ['10.0.0.1'] }), null)
  t.not(checkAddress('2001:0:a00:1:8000:63bf:f5ff:fffd', { allowPrivateNetworks: false, ssrfAllow: ['10.0.0.2'] }), null)
  t.equal(checkAddress('2001:0:a00:1:8000:63bf:f5ff:fffd', { allowPrivateNetworks: false, ssrfAllow: ['10.0.0.1', '10.0.0.2'] }), null)
})

const URLS: Array<[string, boolean, boolean]> = [
  ['https://example.com/hook', false, false],
  ['http://example.com:8080/x?y=1', false, false],
  ['http://93.184.215.14/', false, false],
  ['http://127.0.0.1:4000/hook', false, true],
  ['http://localhost:4000/', false, true],
  ['http://LOCALHOST./', false, true],
  ['http://api.localhost/', false, true],
  ['http://[::1]:4000/', false, true],
  ['http://169.254.169.254/latest/meta-data/', true, true],
  ['http://169.254.169.254./', true, true],
  ['http://user:pw@169.254.169.254/', true, true],
  // the URL parser's other spellings of 169.254.169.254 and 127.0.0.1 are normalised before the check
  ['http://0xa9fea9fe/', true, true],
  ['http://2852039166/', true, true],
  ['http://0251.0376.0251.0376/', true, true],
  ['http://2130706433/', false, true],
  ['http://[::ffff:169.254.169.254]/', true, true],
  ['http://[::ffff:a9fe:a9fe]/', true, true],
  ['http://[fd00:ec2::254]/', true, true],
  ['http://[fe80::1]/', true, true],
  ['http://0.0.0.0:4000/', true, true],
  ['http://[::]:4000/', true, true],
  ['http://224.0.0.1/', true, true],
  ['ftp://example.com/', true, true],
  ['file:///etc/passwd', true, true],
  ['gopher://127.0.0.1/', true, true],
  ['http://[::ffff:0:169.254.169.254]/', true, true],
  ['http://[::ffff:0:a9fe:a9fe]/', true, true],
  ['http://[64:ff9b:1::a9fe:a9fe]/', true, true],
  ['http://[2002:a9fe:a9fe::1]/', true, true],
  ['http://[2002:7f00:1::1]:4000/', false, true],
  ['http://[2001:0:4136:e378:8000:63bf:5601:5601]/', true, true],
  ['http://[fec0::1]/', false, true],
  ['http://192.0.0.170/', true, true],
  ['http://198.18.0.1/', false, true],
  ['not a url', true, true]
]

t.test('checkUrl: the table', async (t) => {
  for (const [url, dev, prod] of URLS) {
    t.equal(checkUrl(url, DEV) !== null, dev, `${url} ${dev ? 'refused' : 'accepted'} with private networks allowed`)
    t.equal(checkUrl(url, PROD) !== null, prod, `${url} ${prod ? 'refused' : 'accepted'} with private networks refused`)
  }
  t.match(checkUrl('ftp://example.com/', DEV), /only http and https/)
  t.equal(checkUrl('http://localhost/', { allowPrivateNetworks: false, ssrfAllow: ['127.0.0.1'] }), null, 'localhost with 127.0.0.1 allowed')
})

t.test('hostToResolve: only names DNS must answer', async (t) => {
  t.equal(hostToResolve('https://Example.COM/x'), 'example.com')
  t.equal(hostToResolve('http://127.0.0.1/'), null)
  t.equal(hostToResolve('http://[::1]/'), null)
  t.equal(hostToResolve('http://localhost/'), null)
})

t.test('parseCidr', async (t) => {
  t.same(parseCidr('10.0.0.0/8'), { address: '10.0.0.0', prefix: 8, family: 'ipv4' })
  t.same(parseCidr(' 127.0.0.1 '), { address: '127.0.0.1', prefix: 32, family: 'ipv4' })
  t.same(parseCidr('fd00::/8'), { address: 'fd00::', prefix: 8, family: 'ipv6' })
  t.same(parseCidr('[::1]'), { address: '::1', prefix: 128, family: 'ipv6' })
  for (const bad of ['', '10.0.0.0/33', '::/129', '10.0.0.0/', '10.0.0.0/8/9', 'example.com', '10.0.0/8', '10.0.0.0/-1', 'fe80::1%eth0']) {
    t.equal(parseCidr(bad), null, `${JSON.stringify(bad)} is refused`)
  }
})

const resolving = (map: Record<string, string[]>): ResolveAll => async (host) => {
  const list = map[host]
  if (list === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' })
  return list.map(address => ({ address, family: address.includes(':') ? 6 : 4 }))
}

t.test('save time: a name is refused only when every address it resolves to is blocked', async (t) => {
  const dns = resolving({ 'meta.test': ['169.254.169.254'], 'mixed.test': ['93.184.215.14', '10.0.0.1'], 'inside.test': ['10.0.0.1', 'fd00::1'] })
  await t.rejects(assertAllowedTarget('http://meta.test/', DEV, dns), { code: 'HOOKPOST_ERR_BLOCKED_TARGET', statusCode: 400, message: /"callbackUrl".*meta\.test resolves only to blocked addresses: 169\.254\.169\.254/ })
  await t.resolves(assertAllowedTarget('http://inside.test/', DEV, dns), 'private allowed')
  await t.rejects(assertAllowedTarget('http://inside.test/', PROD, dns), { code: 'HOOKPOST_ERR_BLOCKED_TARGET' })
  await t.resolves(assertAllowedTarget('http://mixed.test/', PROD, dns), 'one public address: accepted, the connect-time check decides')
  await t.resolves(assertAllowedTarget('http://nowhere.test/', PROD, dns), 'a name that does not resolve is accepted')
  const hangs: ResolveAll = async () => await new Promise(() => {})
  const t0 = Date.now()
  await t.resolves(assertAllowedTarget('http://slow.test/', PROD, hangs), 'a resolver that does not answer is not waited for')
  t.ok(Date.now() - t0 < 3000, `gave up after ${Date.now() - t0} ms`)
  await t.rejects(assertAllowedTarget('http://[::ffff:a9fe:a9fe]/', DEV, dns), { code: 'HOOKPOST_ERR_BLOCKED_TARGET' }, 'literals need no DNS')
})

t.test('save time: IPv4 embedded in IPv6, site-local and reserved ranges, as literals and as what a name resolves to', async (t) => {
  // [address, the reason when refused with private networks refused]
  const cases: Array<[string, RegExp]> = [
    ['::ffff:0:a9fe:a9fe', /\(169\.254\.169\.254\) is a link-local/],
    ['64:ff9b:1::a9fe:a9fe', /\(169\.254\.169\.254\) is a link-local/],
    ['2002:a9fe:a9fe::1', /\(169\.254\.169\.254\) is a link-local/],
    ['2001:0:4136:e378:8000:63bf:5601:5601', /\(169\.254\.169\.254\) is a link-local/],
    ['2002:a00:1::1', /\(10\.0\.0\.1\) is a private \(RFC 1918\)/],
    ['fec0::1', /site-local/],
    ['192.0.0.170', /IETF protocol assignments/],
    ['198.18.0.1', /benchmarking/]
  ]
  const names: Record<string, string[]> = {}
  for (const [address] of cases) names[`h-${address.replace(/[:.]/g, '-')}.test`] = [address]
  const dns = resolving(names)
  for (const [address, reason] of cases) {
    const literal = address.includes(':') ? `[${address}]` : address
    await t.rejects(assertAllowedTarget(`http://${literal}/`, PROD, dns), { code: 'HOOKPOST_ERR_BLOCKED_TARGET', message: reason }, `${literal} refused`)
    const name = `h-${address.replace(/[:.]/g, '-')}.test`
    await t.rejects(assertAllowedTarget(`http://${name}/`, PROD, dns), { code: 'HOOKPOST_ERR_BLOCKED_TARGET', message: reason }, `${name}, which resolves to ${address}, refused`)
  }
  await t.resolves(assertAllowedTarget('http://[2002:808:808::1]/', PROD, dns), '6to4 of a public address')
  await t.resolves(assertAllowedTarget('http://[64:ff9b:1::808:808]/', PROD, dns), 'local-use NAT64 of a public address')
})

t.test('connect time: one blocked address fails the lookup; net gets what it asked for otherwise', async (t) => {
  const dns = resolving({ 'ok.test': ['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c'], 'mixed.test': ['93.184.215.14', '169.254.169.254'] })
  const lookup = guardedLookup(PROD, dns)
  const call = async (host: string, all: boolean): Promise<{ err: any, address: any, family: any }> =>
    await new Promise((resolve) => lookup(host, { all }, (err, address, family) => resolve({ err, address, family })))
  t.match(await call('ok.test', true), { err: null, address: [{ address: '93.184.215.14', family: 4 }, { family: 6 }] })
  t.match(await call('ok.test', false), { err: null, address: '93.184.215.14', family: 4 })
  const mixed = await call('mixed.test', true)
  t.match(mixed.err, { code: 'HOOKPOST_ERR_BLOCKED_TARGET', message: /mixed\.test resolves to a blocked address: 169\.254\.169\.254/ })
  t.match((await call('nowhere.test', false)).err, { code: 'ENOTFOUND' })
})

t.test('connect time: a name resolving to IPv6 that embeds a blocked IPv4 address, or to a site-local or reserved one, fails', async (t) => {
  const blocked = ['::ffff:0:a00:1', '64:ff9b:1::a00:1', '2002:a00:1::1', '2001:0:4136:e378:8000:63bf:f5ff:fffe', 'fec0::1', '192.0.0.1', '198.18.0.1']
  const names: Record<string, string[]> = { 'ok.test': ['2002:808:808::1', '64:ff9b:1::808:808'] }
  for (const address of blocked) names[`h-${address.replace(/[:.]/g, '-')}.test`] = ['93.184.215.14', address]
  const lookup = guardedLookup(PROD, resolving(names))
  const call = async (host: string): Promise<{ err: any, address: any }> =>
    await new Promise((resolve) => lookup(host, { all: true }, (err, address) => resolve({ err, address })))
  t.match(await call('ok.test'), { err: null, address: [{ address: '2002:808:808::1' }, { address: '64:ff9b:1::808:808' }] })
  for (const address of blocked) {
    const name = `h-${address.replace(/[:.]/g, '-')}.test`
    t.match((await call(name)).err, { code: 'HOOKPOST_ERR_BLOCKED_TARGET', message: /resolves to a blocked address/ }, `${name} (${address})`)
  }
})

t.test('connect time: an IP-literal origin that embeds a blocked IPv4 address is refused before dispatch', async (t) => {
  // the verdict the delivery Agent asks before dispatching (lib/delivery/sender.ts; test/sender.test.ts
  // shows that a refused origin is never connected to)
  const refused = blockedLiteral(PROD)
  for (const origin of ['http://[2002:a9fe:a9fe::1]', 'http://[::ffff:0:a00:1]', 'http://[64:ff9b:1::7f00:1]', 'http://[2001:0:4136:e378:8000:63bf:5601:5601]', 'http://[fec0::1]', 'http://192.0.0.170', 'http://198.18.0.1']) {
    t.type(refused(origin), 'string', origin)
  }
  t.equal(refused('http://[2002:808:808::1]'), null, 'the public one is not refused')
  t.equal(refused('http://ok.test'), null, 'a name is left to the lookup')
})

t.test('config: the policy, its defaults and both sources', async (t) => {
  t.equal(loadConfig({ env: {}, cwd: '/nonexistent' }).hooks.allowPrivateNetworks, true, 'allowed outside production')
  t.equal(loadConfig({ env: { NODE_ENV: 'production' }, cwd: '/nonexistent' }).hooks.allowPrivateNetworks, false, 'refused in production')
  const c = loadConfig({ env: { NODE_ENV: 'production', HOOKPOST_ALLOW_PRIVATE_NETWORKS: 'true', HOOKPOST_SSRF_ALLOW: ' 10.1.0.0/16, 127.0.0.1 ,' }, cwd: '/nonexistent' })
  t.equal(c.hooks.allowPrivateNetworks, true)
  t.same(c.hooks.ssrfAllow, ['10.1.0.0/16', '127.0.0.1'])
  t.throws(() => loadConfig({ env: { HOOKPOST_SSRF_ALLOW: '10.0.0.0/8,intranet' }, cwd: '/nonexistent' }), ConfigError)
  t.throws(() => loadConfig({ env: { HOOKPOST_SSRF_ALLOW: '10.0.0.0/8,intranet' }, cwd: '/nonexistent' }), /HOOKPOST_SSRF_ALLOW.*"intranet"/)
  t.throws(() => loadConfig({ env: { HOOKPOST_ALLOW_PRIVATE_NETWORKS: 'maybe' }, cwd: '/nonexistent' }), /HOOKPOST_ALLOW_PRIVATE_NETWORKS/)
  const cwd = mkdtempSync(join(tmpdir(), 'hookpost-ssrf-'))
  writeFileSync(join(cwd, 'platformatic.json'), JSON.stringify({ hooks: { allowPrivateNetworks: false, ssrfAllow: ['192.168.5.0/24', 'fd00::/8'] } }))
  const f = loadConfig({ env: {}, cwd })
  t.equal(f.hooks.allowPrivateNetworks, false)
  t.same(f.hooks.ssrfAllow, ['192.168.5.0/24', 'fd00::/8'])
  t.equal(loadConfig({ env: { HOOKPOST_ALLOW_PRIVATE_NETWORKS: 'true' }, cwd }).hooks.allowPrivateNetworks, true, 'the environment wins')
})

async function post (app: FastifyInstance, url: string, payload: object): Promise<any> {
  const res = await app.inject({ method: 'POST', url, payload })
  if (res.statusCode >= 300) throw new Error(`${url}: ${res.statusCode} ${res.body}`)
  return res.json()
}

async function refused (t: Test, app: FastifyInstance, callbackUrl: string, pattern: RegExp): Promise<void> {
  const res = await app.inject({ method: 'POST', url: '/queues', payload: { name: `q-${Math.random()}`, callbackUrl } })
  t.equal(res.statusCode, 400, `${callbackUrl}: 400`)
  t.match(res.json(), { code: 'HOOKPOST_ERR_BLOCKED_TARGET', message: /"callbackUrl"/ }, `${callbackUrl}: names callbackUrl`)
  t.match(res.json().message, pattern)
}

async function engine (t: Test, hooks: NonNullable<ConfigOverrides>['hooks'] = {}) {
  const ctx = await testApp(t, { hooks: { enabled: true, leaderPollMs: 100, pollMs: 60_000, ...hooks } })
  await ctx.app.ready()
  await eventually(async () => ctx.app.delivery!.worker.active)
  return { ...ctx, pool: testPool(t, ctx.url) }
}

t.test('save: metadata and its IPv6 spellings are refused even with private networks allowed; REST and GraphQL alike', async (t) => {
  const { app } = await testApp(t)
  t.equal(app.config.hooks.allowPrivateNetworks, true, 'the development default')
  await refused(t, app, 'http://169.254.169.254/latest/meta-data/', /169\.254\.169\.254 is a link-local address/)
  await refused(t, app, 'http://[::ffff:169.254.169.254]/', /\(169\.254\.169\.254\) is a link-local/)
  await refused(t, app, 'http://[::ffff:a9fe:a9fe]/', /link-local/)
  await refused(t, app, 'http://100.100.100.200/', /cloud metadata/)

  const q = await post(app, '/queues', { name: 'fine', callbackUrl: 'http://127.0.0.1:9/' })
  const put = await app.inject({ method: 'PUT', url: `/queues/${q.id}`, payload: { callbackUrl: 'http://169.254.169.254/' } })
  t.equal(put.statusCode, 400, 'an update is checked too')
  t.equal(put.json().code, 'HOOKPOST_ERR_BLOCKED_TARGET')
  t.equal((await app.inject({ url: `/queues/${q.id}` })).json().callbackUrl, 'http://127.0.0.1:9/', 'and changed nothing')

  const gql = async (query: string): Promise<any> => (await app.inject({ method: 'POST', url: '/graphql', payload: { query } })).json()
  const save = await gql('mutation { saveQueue(input: { name: "g", callbackUrl: "http://169.254.169.254/" }) { id } }')
  t.match(save.errors?.[0], { message: /"callbackUrl"/, extensions: { code: 'HOOKPOST_ERR_BLOCKED_TARGET', statusCode: 400 } }, 'GraphQL saveQueue')
  const update = await gql(`mutation { saveQueue(input: { id: ${q.id}, callbackUrl: "http://[fe80::1]/" }) { id } }`)
  t.match(update.errors?.[0], { extensions: { code: 'HOOKPOST_ERR_BLOCKED_TARGET' } }, 'GraphQL saveQueue as an update')
  const bulk = await gql('mutation { insertQueues(inputs: [{ name: "a", callbackUrl: "http://127.0.0.1:9/" }, { name: "b", callbackUrl: "http://0.0.0.0/" }]) { id } }')
  t.match(bulk.errors?.[0], { extensions: { code: 'HOOKPOST_ERR_BLOCKED_TARGET' } }, 'GraphQL insertQueues')
  t.equal((await app.inject({ url: '/queues?where.name.eq=a' })).json().length, 0, 'all or nothing')
})

t.test('a loopback receiver is allowed by the development default, and delivered', async (t) => {
  const target = await receiver(t)
  const { app } = await engine(t)
  const q = await post(app, '/queues', { name: 'local', callbackUrl: `${target.url}/hook` })
  await post(app, '/messages', { queueId: q.id, body: 'hi' })
  const [r] = await target.waitFor(1)
  t.equal(r!.body, 'hi')
})

t.test('with private networks refused, loopback is refused at save', async (t) => {
  const target = await receiver(t)
  const { app } = await testApp(t, { hooks: { allowPrivateNetworks: false } })
  const port = new URL(target.url).port
  await refused(t, app, `http://127.0.0.1:${port}/`, /127\.0\.0\.1 is a loopback address.*HOOKPOST_ALLOW_PRIVATE_NETWORKS/)
  await refused(t, app, `http://localhost:${port}/`, /localhost is loopback/)
  await refused(t, app, 'http://[::1]/', /loopback/)
  await refused(t, app, 'http://10.0.0.1/', /RFC 1918/)
  await refused(t, app, 'http://[fd12::1]/', /unique-local/)
  await refused(t, app, 'http://[fec0::1]/', /site-local/)
  await refused(t, app, `http://[2002:7f00:1::1]:${port}/`, /\(127\.0\.0\.1\) is a loopback/)
  await refused(t, app, `http://[::ffff:0:7f00:1]:${port}/`, /\(127\.0\.0\.1\) is a loopback/)
  await refused(t, app, 'http://[64:ff9b:1::a9fe:a9fe]/', /\(169\.254\.169\.254\) is a link-local/)
  await refused(t, app, 'http://192.0.0.170/', /IETF protocol assignments/)
  await refused(t, app, 'http://198.18.0.1/', /benchmarking/)
})

t.test('a name that resolves to a blocked address is refused at connect time (DNS rebinding)', async (t) => {
  const target = await receiver(t)
  const { app, pool } = await engine(t, { allowPrivateNetworks: false })
  const port = new URL(target.url).port
  // written with plain SQL, past the save-time check, as if the name had resolved elsewhere when saved
  const { rows: [byName] } = await pool.query(
    `INSERT INTO hookpost.queues (name, callback_url, max_retries, backoff_base_ms, backoff_jitter)
     VALUES ('rebound', $1, 1, 50, 'none') RETURNING id`, [`http://localhost:${port}/`])
  const { rows: [byLiteral] } = await pool.query(
    'INSERT INTO hookpost.queues (name, callback_url, max_retries) VALUES (\'literal\', $1, 0) RETURNING id', [`http://127.0.0.1:${port}/`])
  const m = await post(app, '/messages', { queueId: byName.id, body: 'x' })
  const l = await post(app, '/messages', { queueId: byLiteral.id, body: 'y' })

  const dead = await eventually(async () => {
    const x = (await app.inject({ url: `/messages/${m.id}` })).json()
    return x.failed === true && x
  })
  t.match(dead, { sentAt: null, attempts: 2, lastStatus: null }, 'retried like any failure, then dead')
  const attempts = (await app.inject({ url: `/messages/${m.id}/attempts` })).json()
  t.equal(attempts.length, 2)
  for (const a of attempts) {
    t.match(a, { errorKind: 'blocked', statusCode: null, error: /HOOKPOST_ERR_BLOCKED_TARGET.*localhost resolves to a blocked address: 127\.0\.0\.1 is a loopback address/ })
  }
  await eventually(async () => (await app.inject({ url: `/messages/${l.id}` })).json().failed === true)
  const [literal] = (await app.inject({ url: `/messages/${l.id}/attempts` })).json()
  t.match(literal, { errorKind: 'blocked', error: /127\.0\.0\.1 is a loopback address/ }, 'an IP literal, which net connects to without a lookup')
  // both are dead: nothing more is sent
  t.equal(target.requests.length, 0, 'the receiver got nothing')
})

t.test('HOOKPOST_SSRF_ALLOW lets a listed address through with private networks refused', async (t) => {
  const target = await receiver(t)
  const { app } = await engine(t, { allowPrivateNetworks: false, ssrfAllow: ['127.0.0.1/32'] })
  const q = await post(app, '/queues', { name: 'internal', callbackUrl: `${target.url}/svc` })
  await post(app, '/messages', { queueId: q.id, body: 'allowed' })
  const [r] = await target.waitFor(1)
  t.equal(r!.url, '/svc')
  await refused(t, app, 'http://127.0.0.2/', /loopback/)
})
