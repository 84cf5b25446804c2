// Small helpers every page uses: elements built from data as text (never as markup), numbers and times
// in words, the per-minute chart, and headers with their secrets masked.

const SVG = 'http://www.w3.org/2000/svg'

/**
 * h('a', { href: '#/', class: 'x', onclick: fn }, 'text', child): an element. Strings become text nodes,
 * so a message body or a response is shown as it is, never run as HTML.
 */
export function h (tag, attrs = {}, ...children) {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v)
    else if (k === 'value') el.value = v
    else if (k === 'checked') el.checked = v
    else el.setAttribute(k, v === true ? '' : String(v))
  }
  append(el, children)
  return el
}

function append (el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue
    el.append(c instanceof Node ? c : document.createTextNode(String(c)))
  }
}

/** Replaces an element's children. */
export function fill (el, ...children) {
  el.replaceChildren()
  append(el, children)
  return el
}

const numbers = new Intl.NumberFormat()

/** a count the overview caps (100,000): shown as "100,000+" past it */
export function count (n, cap) {
  if (n === null || n === undefined) return '–'
  return cap !== undefined && n >= cap ? `${numbers.format(cap)}+` : numbers.format(n)
}

export function percent (x) {
  return x === null || x === undefined ? '–' : `${(x * 100).toFixed(x >= 0.9995 || x === 0 ? 0 : 1)}%`
}

export function ms (x) {
  if (x === null || x === undefined) return '–'
  return x < 1000 ? `${Math.round(x)} ms` : `${(x / 1000).toFixed(x < 10_000 ? 2 : 1)} s`
}

export function time (iso) {
  if (iso === null || iso === undefined) return '–'
  const d = new Date(iso)
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString()
}

/** a <time> element: the local time shown, the exact instant in its datetime */
export function timeEl (iso) {
  return iso === null || iso === undefined ? '–' : h('time', { datetime: iso, title: iso }, time(iso))
}

/** The value of a JSON body, pretty when it is JSON, as it is when it is not. */
export function pretty (value) {
  if (typeof value === 'string') {
    try { return JSON.stringify(JSON.parse(value), null, 2) } catch { return value }
  }
  return JSON.stringify(value, null, 2)
}

// names that carry credentials: their values are never shown
const SECRET_HEADER = /auth|cookie|secret|token|key|signature|password|session|credential/i
export const MASK = '••••••••'

export function maskedHeaders (headers) {
  return Object.entries(headers ?? {}).map(([name, value]) => [name, SECRET_HEADER.test(name) ? MASK : value])
}

export function headersList (headers) {
  const rows = maskedHeaders(headers)
  if (rows.length === 0) return h('p', { class: 'muted' }, 'none')
  return h('dl', { class: 'headers' }, rows.map(([name, value]) => [h('dt', {}, name), h('dd', {}, value)]))
}

const STATE_CLASS = {
  active: 'ok',
  sent: 'ok',
  delivered: 'ok',
  paused: 'warn',
  pending: 'info',
  held: 'warn',
  'half-open': 'warn',
  disabled: 'bad',
  failed: 'bad',
  'circuit open': 'bad'
}

export function badge (state) {
  return h('span', { class: `badge ${STATE_CLASS[state] ?? 'info'}` }, state)
}

/** A message's state in one word. */
export function messageState (m) {
  if (m.sentAt !== null) return 'sent'
  if (m.failed) return 'failed'
  return 'pending'
}

/**
 * Deliveries (up) and failures (down) per minute over the last hour, as bars. perMinute: the
 * overview's { from, delivered[], failed[] }. Labelled with its totals for screen readers.
 */
export function chart (perMinute, name) {
  const { delivered, failed } = perMinute
  const width = 120
  const height = 32
  const mid = 20
  const peak = Math.max(1, ...delivered, ...failed)
  const bar = width / delivered.length
  const sum = (a) => a.reduce((n, x) => n + x, 0)
  const svg = document.createElementNS(SVG, 'svg')
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`)
  svg.setAttribute('class', 'chart')
  svg.setAttribute('role', 'img')
  svg.setAttribute('aria-label',
    `${name}: ${sum(delivered)} delivered and ${sum(failed)} failed in the last hour, per minute`)
  const line = document.createElementNS(SVG, 'line')
  for (const [k, v] of Object.entries({ x1: 0, x2: width, y1: mid + 0.5, y2: mid + 0.5, class: 'axis' })) {
    line.setAttribute(k, v)
  }
  svg.append(line)
  delivered.forEach((d, i) => {
    if (d > 0) svg.append(rect(i * bar, mid - (mid * d) / peak, bar * 0.8, (mid * d) / peak, 'up'))
    const f = failed[i]
    if (f > 0) svg.append(rect(i * bar, mid + 1, bar * 0.8, ((height - mid - 1) * f) / peak, 'down'))
  })
  return svg
}

function rect (x, y, w, hgt, cls) {
  const r = document.createElementNS(SVG, 'rect')
  r.setAttribute('x', x.toFixed(2))
  r.setAttribute('y', y.toFixed(2))
  r.setAttribute('width', w.toFixed(2))
  r.setAttribute('height', Math.max(hgt, 0.75).toFixed(2))
  r.setAttribute('class', cls)
  return r
}

/** A labelled form field: the label's for and the control's id tie them for keyboards and readers. */
let fieldIds = 0
export function field (label, control, hint) {
  const id = control.id || `f${++fieldIds}`
  control.id = id
  return h('div', { class: 'field' }, h('label', { for: id }, label), control,
    hint === undefined ? null : h('small', {}, hint))
}

/** A table whose rows read as cards on a narrow screen: each cell carries its column's name. */
export function table (caption, columns, rows) {
  return h('div', { class: 'table-wrap' },
    h('table', {},
      h('caption', { class: 'sr-only' }, caption),
      h('thead', {}, h('tr', {}, columns.map(c => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows.map(cells => h('tr', {}, cells.map((c, i) => h('td', { 'data-label': columns[i] }, c)))))))
}

/** Newer/older buttons for a list of `size` a page; go(offset) loads another page. */
export function pager (offset, size, total, go) {
  return h('div', { class: 'pager' },
    h('button', { type: 'button', disabled: offset === 0, onclick: () => go(Math.max(0, offset - size)) }, 'Newer'),
    h('span', {}, total === 0 ? '0' : `${offset + 1}–${Math.min(offset + size, total)} of ${count(total)}`),
    h('button', { type: 'button', disabled: offset + size >= total, onclick: () => go(offset + size) }, 'Older'))
}
