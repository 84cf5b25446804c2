// The dashboard's one door to hookpost: the REST API, with the admin secret (when signed in) as a
// header, never in a URL; and the live overview, read as Server-Sent Events through fetch, since
// EventSource cannot send a header.

export const SECRET_HEADER = 'X-PLATFORMATIC-ADMIN-SECRET'
const SECRET_KEY = 'hookpost.adminSecret'
/** wait before a live stream that broke is opened again */
const RECONNECT_MS = 1000

/** An answer that was not a success, in the words the API gave. */
export class ApiError extends Error {
  constructor (status, code, message) {
    super(message)
    this.status = status
    this.code = code
  }

  /** the admin secret is missing or wrong: the page asks for it */
  get needsSecret () { return this.status === 401 || this.status === 403 }
}

// sessionStorage: the secret lives as long as the tab, and no other tab or later visit sees it
export const secret = {
  get: () => sessionStorage.getItem(SECRET_KEY),
  set: (value) => sessionStorage.setItem(SECRET_KEY, value),
  clear: () => sessionStorage.removeItem(SECRET_KEY)
}

function headersWith (extra) {
  const headers = { ...extra }
  const s = secret.get()
  if (s !== null) headers[SECRET_HEADER] = s
  return headers
}

async function problem (res) {
  let body = null
  try { body = await res.json() } catch { /* not JSON: the status says it */ }
  const message = typeof body?.message === 'string' ? body.message : `${res.status} ${res.statusText}`
  return new ApiError(res.status, body?.code ?? null, message)
}

/** One call. Resolves to { data, total } (total: X-Total-Count when asked for), or throws an ApiError. */
export async function api (method, path, body) {
  let res
  try {
    res = await fetch(path, {
      method,
      headers: headersWith(body === undefined ? {} : { 'content-type': 'application/json' }),
      body: body === undefined ? undefined : JSON.stringify(body)
    })
  } catch (err) {
    throw new ApiError(0, null, `hookpost did not answer: ${err.message}`)
  }
  if (!res.ok) throw await problem(res)
  const text = await res.text()
  const total = res.headers.get('x-total-count')
  return { data: text === '' ? null : JSON.parse(text), total: total === null ? null : Number(total) }
}

/** A querystring from an object; undefined and null values are left out. */
export function query (params) {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) q.set(k, String(v))
  const s = q.toString()
  return s === '' ? '' : `?${s}`
}

/**
 * Follows a Server-Sent Events stream: onEvent(name, data) for each event; onState('live' | 'reconnecting',
 * error?) as the stream comes and goes. Reconnects until the returned stop() is called.
 */
export function follow (path, onEvent, onState) {
  const abort = new AbortController()
  let wait
  const connect = async () => {
    try {
      const res = await fetch(path, { headers: headersWith({ accept: 'text/event-stream' }), signal: abort.signal })
      if (!res.ok) throw await problem(res)
      onState('live')
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
      let buffered = ''
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        buffered += value
        let end
        while ((end = buffered.indexOf('\n\n')) >= 0) {
          dispatch(buffered.slice(0, end), onEvent)
          buffered = buffered.slice(end + 2)
        }
      }
      onState('reconnecting')
    } catch (err) {
      if (abort.signal.aborted) return
      onState('reconnecting', err instanceof ApiError ? err : new ApiError(0, null, 'the live stream broke'))
      if (err instanceof ApiError && err.needsSecret) return
    }
    if (!abort.signal.aborted) wait = setTimeout(connect, RECONNECT_MS)
  }
  connect()
  return () => {
    abort.abort()
    clearTimeout(wait)
  }
}

function dispatch (frame, onEvent) {
  let name = 'message'
  const data = []
  for (const line of frame.split('\n')) {
    if (line.startsWith('event:')) name = line.slice(6).trim()
    else if (line.startsWith('data:')) data.push(line.slice(5).trimStart())
  }
  if (data.length > 0) onEvent(name, JSON.parse(data.join('\n')))
}
