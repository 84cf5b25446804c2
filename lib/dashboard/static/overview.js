// Overview: every queue, live. One Server-Sent Events stream brings the whole overview each second;
// rows are updated in place, so focus and scroll stay where the operator left them.
import { follow } from './api.js'
import { badge, chart, count, fill, h, ms, percent, timeEl } from './ui.js'

export const COUNT_CAP = 100_000
const COLUMNS = ['Queue', 'State', 'Backlog', 'Due', 'In flight', 'Delivered (1 h)', 'Failed (1 h)', 'Success', 'p50',
  'p99', 'Last error', 'Per minute (1 h)']

/** Follows the overview stream; onQueues(list) each second. Returns stop(). */
export function followOverview (ctx, status, onQueues) {
  return follow('/dashboard/api/overview/stream', (name, data) => {
    if (name === 'overview' || name === 'same') {
      fill(status, 'Live · updated ', h('time', {}, new Date().toLocaleTimeString()))
      ctx.clearError()
      // same: nothing changed since the last overview
      if (name === 'overview') onQueues(data)
    } else if (name === 'problem') {
      ctx.showError(new Error(data.message))
    }
  }, (state, err) => {
    if (state === 'reconnecting') {
      fill(status, 'Reconnecting…')
      if (err !== undefined) ctx.showError(err)
    }
  })
}

function lastError (e) {
  if (e === null) return '–'
  const status = e.status === null ? '' : `HTTP ${e.status}`
  // the error of an HTTP failure is often the status again: said once
  const said = [status, e.error ?? ''].filter((x, i, all) => x !== '' && all.indexOf(x) === i).join(': ')
  return h('span', { class: 'last-error' }, timeEl(e.at), ' ', said)
}

export async function overviewPage (view, ctx) {
  const status = h('p', { class: 'live muted' }, 'Connecting…')
  const body = h('tbody')
  const empty = h('p', { class: 'muted', hidden: true },
    'No queues yet. Create one with POST /queues (see /documentation).')
  fill(view,
    h('div', { class: 'title-row' }, h('h1', {}, 'Queues'), status),
    empty,
    h('div', { class: 'table-wrap' },
      h('table', { class: 'overview' },
        h('caption', { class: 'sr-only' }, 'Every queue, with its backlog and the last hour of deliveries'),
        h('thead', {}, h('tr', {}, COLUMNS.map(c => h('th', { scope: 'col' }, c)))),
        body)))
  const rows = new Map()
  return followOverview(ctx, status, (queues) => {
    empty.hidden = queues.length > 0
    const seen = new Set()
    for (const q of queues) {
      seen.add(q.id)
      let row = rows.get(q.id)
      if (row === undefined) {
        const cells = COLUMNS.map(c => h('td', { 'data-label': c }))
        row = { tr: h('tr', { 'data-queue': q.id }, cells), cells }
        rows.set(q.id, row)
      }
      // in id order, as the overview lists them
      body.append(row.tr)
      const [name, state, backlog, due, inFlight, delivered, failed, success, p50, p99, error, perMinute] = row.cells
      fill(name, h('a', { href: `#/queues/${q.id}` }, q.name))
      fill(state, badge(q.state))
      fill(backlog, count(q.pending, COUNT_CAP))
      fill(due, count(q.due, COUNT_CAP))
      fill(inFlight, count(q.claimed, COUNT_CAP))
      fill(delivered, count(q.lastHour.delivered))
      fill(failed, count(q.lastHour.failed))
      fill(success, percent(q.lastHour.successRate))
      fill(p50, ms(q.lastHour.p50Ms))
      fill(p99, ms(q.lastHour.p99Ms))
      fill(error, lastError(q.lastError))
      fill(perMinute, chart(q.perMinute, q.name))
    }
    for (const [id, row] of rows) {
      if (!seen.has(id)) {
        row.tr.remove()
        rows.delete(id)
      }
    }
  })
}
