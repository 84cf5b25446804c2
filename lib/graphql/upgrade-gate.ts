// Node hands every request that says `Connection: Upgrade` to the server's 'upgrade' listeners, not to
// Fastify's request handler; @fastify/websocket then routes it through Fastify with the raw socket,
// outside Node's HTTP bookkeeping. Two things followed from that: a HEAD with any Upgrade header ran
// the GraphQL handler with the secret check skipped, and an upgrade to any other path left its socket
// open for good (nothing in those routes' scope destroys it). So one gate stands before every upgrade
// listener: only a real WebSocket handshake to the one path that serves WebSockets gets through;
// everything else is answered and its socket closed.
import type { IncomingMessage, Server } from 'node:http'
import type { Duplex } from 'node:stream'

/** What RFC 6455 requires of a client's opening handshake, and nothing looser. */
export function isWebSocketHandshake (req: IncomingMessage): boolean {
  const h = req.headers
  return req.method === 'GET' &&
    typeof h.upgrade === 'string' && h.upgrade.split(',').some(t => t.trim().toLowerCase() === 'websocket') &&
    typeof h['sec-websocket-key'] === 'string' && h['sec-websocket-key'] !== '' &&
    typeof h['sec-websocket-version'] === 'string'
}

/** The path without query string, as sent: '/%67raphql' is not '/graphql' here. */
function pathOf (url: string | undefined): string {
  const p = (url ?? '').split('?', 1)[0] ?? ''
  return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p
}

/** True when this upgrade may reach the WebSocket endpoint at `path`. */
export function upgradeAllowed (req: IncomingMessage, path: string): boolean {
  return pathOf(req.url) === path && isWebSocketHandshake(req)
}

// a client that never reads its answer does not keep the socket
const REFUSE_LINGER_MS = 1000

function refuse (socket: Duplex, status: string): void {
  // the body-less answer a client expects, then the socket is ours to close: nobody else holds it
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`, () => socket.destroy())
  setTimeout(() => socket.destroy(), REFUSE_LINGER_MS).unref()
}

type UpgradeListener = (req: IncomingMessage, socket: Duplex, head: Buffer) => void

/**
 * Puts the gate in front of the upgrade listeners registered so far: call it once every plugin is in.
 * close() refuses every upgrade from then on (the listeners it wraps can no longer be removed by
 * their owners, so a closing server says so here).
 */
export function installUpgradeGate (server: Server, path: string): { close: () => void } {
  const inner = server.listeners('upgrade') as UpgradeListener[]
  let open = true
  server.removeAllListeners('upgrade')
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy())
    if (pathOf(req.url) !== path) return refuse(socket, '404 Not Found')
    if (!isWebSocketHandshake(req)) return refuse(socket, '400 Bad Request')
    if (!open || inner.length === 0) return refuse(socket, '503 Service Unavailable')
    for (const l of inner) l.call(server, req, socket, head)
  })
  return { close: () => { open = false } }
}
