// A guard in front of mercurius on each GraphQL WebSocket: it sees every client message first and keeps
// the graphql-transport-ws rules that mercurius does not:
// - a socket without connection_init in time is closed with 4408;
// - a subscribe whose id is still live is refused with 4409 (mercurius would overwrite the first, whose
//   iterator then runs, and holds the subscriber count, until the process ends);
// - at most maxSubscriptions live per socket (each runs on every delivery event);
// - a message that is JSON but not an object is closed with 4400 (mercurius throws on it and logs the
//   stack at error level, which anyone could repeat without the secret).
// Messages are read as mercurius reads them (secure-json-parse), so what it refuses counts for nothing.
import sjson from 'secure-json-parse'
import type WebSocket from 'ws'

export interface WsGuardOptions {
  initTimeoutMs: number
  maxSubscriptions: number
}

// both protocols' names: graphql-transport-ws, then subscriptions-transport-ws ('graphql-ws')
const SUBSCRIBE = new Set(['subscribe', 'start'])
const CLIENT_COMPLETE = new Set(['complete', 'stop'])
// a subscription that failed to start is over: its id is free again. (Not the server's "complete": it
// also echoes a client's complete, late enough to free an id the client has already reused. Ours
// never end by themselves, only by the client's complete or the socket's close.)
const SERVER_DONE = /^\{"type":"error","id":("(?:[^"\\]|\\.)*")/

function read (data: unknown): unknown {
  try {
    return sjson.parse(String(data))
  } catch {
    return undefined
  }
}

export function guardWebSocket (ws: WebSocket, opts: WsGuardOptions): void {
  const live = new Set<string>()
  let initialised = false
  const timer = setTimeout(() => ws.close(4408, 'Connection initialisation timeout'), opts.initTimeoutMs)
  ws.once('close', () => clearTimeout(timer))

  const send = ws.send.bind(ws) as (...args: unknown[]) => void
  ws.send = ((data: unknown, ...rest: unknown[]) => {
    const done = typeof data === 'string' ? SERVER_DONE.exec(data) : null
    if (done !== null) live.delete(JSON.parse(done[1]!) as string)
    send(data, ...rest)
  }) as WebSocket['send']

  // ahead of every listener, mercurius's included: a refused message is never seen by it
  const emit = ws.emit.bind(ws) as (event: string | symbol, ...args: unknown[]) => boolean
  ws.emit = (event: string | symbol, ...args: unknown[]): boolean => {
    if (event !== 'message') return emit(event, ...args)
    const refusal = judge(read(args[0]))
    if (refusal === undefined) return emit(event, ...args)
    ws.close(refusal[0], refusal[1])
    return false
  }

  function judge (m: unknown): [number, string] | undefined {
    // not JSON at all: mercurius answers that itself, without a stack
    if (m === undefined) return undefined
    if (m === null || typeof m !== 'object' || Array.isArray(m)) return [4400, 'Invalid message']
    const { type, id } = m as { type?: unknown, id?: unknown }
    if (type === 'connection_init' && !initialised) {
      initialised = true
      clearTimeout(timer)
    } else if (typeof type === 'string' && SUBSCRIBE.has(type) && typeof id === 'string') {
      if (live.has(id)) return [4409, `Subscriber for ${id.slice(0, 64)} already exists`]
      if (live.size >= opts.maxSubscriptions) return [4400, `Too many subscriptions: at most ${opts.maxSubscriptions}`]
      live.add(id)
    } else if (typeof type === 'string' && CLIENT_COMPLETE.has(type) && typeof id === 'string') {
      live.delete(id)
    }
    return undefined
  }
}
