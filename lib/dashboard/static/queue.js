// A queue: its live counts, the actions an operator takes (pause, resume, enable, redrive, replay,
// rotate the signing secret), its settings to read and edit, and its messages, filtered and paged.
import { query } from './api.js'
import { COUNT_CAP, followOverview } from './overview.js'
import {
  badge, count, field, fill, h, headersList, messageState, ms, pager, percent, table, timeEl
} from './ui.js'

const PAGE_SIZE = 20
const MESSAGE_COLUMNS = ['Id', 'State', 'When', 'Attempts', 'Last status', 'Event type', 'Idempotency key']

// the settings form: [field, label, kind, hint]; kinds: text, url, int, number (null when empty), list, json…
const SETTINGS = [
  ['name', 'Name', 'text'],
  ['callbackUrl', 'Callback URL', 'url'],
  ['method', 'Method', ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']],
  ['maxRetries', 'Retries after the first attempt', 'int'],
  ['timeoutMs', 'Timeout (ms)', 'int'],
  ['backoffBaseMs', 'First retry delay (ms)', 'int'],
  ['backoffMaxMs', 'Longest retry delay (ms)', 'int'],
  ['backoffJitter', 'Jitter', ['full', 'equal', 'none']],
  ['deadLetterQueueId', 'Dead-letter queue id', 'int?', 'empty: none'],
  ['rateLimitPerSecond', 'Rate limit (calls/s)', 'number?', 'empty: unlimited'],
  ['maxConcurrency', 'Calls in flight at most', 'int?', 'empty: unlimited'],
  ['fifo', 'One at a time, in order (fifo)', 'bool'],
  ['circuitFailureThreshold', 'Failures in a row that open the circuit', 'int', '0: no circuit breaker'],
  ['circuitCooldownMs', 'Circuit cool-down (ms)', 'int'],
  ['disableAfterHours', 'Disable after failing for (hours)', 'int', '0: never'],
  ['eventTypes', 'Event types', 'list', 'comma-separated patterns, e.g. order.*, invoice.paid'],
  ['filter', 'Event filter (JSON object)', 'json?', 'empty: every event of those types'],
  ['payloadFormat', 'Payload format', ['raw', 'standard-webhooks']]
]

/** The queue's state, as the overview names it. */
export function queueState (q) {
  if (q.disabled) return 'disabled'
  if (q.paused) return 'paused'
  const held = q.heldUntil !== null && new Date(q.heldUntil) > new Date()
  if (q.circuitState === 'open') return held ? 'circuit open' : 'half-open'
  return held ? 'held' : 'active'
}

function control (q, [name, , kind]) {
  const v = q[name]
  if (Array.isArray(kind)) {
    return h('select', { name }, kind.map(o => h('option', { value: o, selected: o === v }, o)))
  }
  if (kind === 'bool') return h('input', { name, type: 'checkbox', checked: v === true })
  if (kind === 'list') return h('input', { name, type: 'text', value: (v ?? []).join(', ') })
  if (kind === 'json?') {
    return h('textarea', { name, rows: 3, spellcheck: 'false' }, v === null ? '' : JSON.stringify(v, null, 2))
  }
  const type = kind.startsWith('int') || kind.startsWith('number') ? 'number' : kind === 'url' ? 'url' : 'text'
  return h('input', { name, type, step: kind.startsWith('number') ? 'any' : undefined, value: v ?? '' })
}

/** The form's value for a field, or throws with the field's label when it cannot be read. */
function read (form, [name, label, kind]) {
  const el = form.elements[name]
  if (kind === 'bool') return el.checked
  const raw = el.value.trim()
  if (Array.isArray(kind) || kind === 'text' || kind === 'url') return el.value
  if (kind === 'list') return raw === '' ? [] : raw.split(',').map(s => s.trim()).filter(s => s !== '')
  if (kind.endsWith('?') && raw === '') return null
  if (kind.startsWith('json')) {
    try { return JSON.parse(raw) } catch { throw new Error(`${label}: not valid JSON`) }
  }
  const n = Number(raw)
  if (raw === '' || Number.isNaN(n)) throw new Error(`${label}: a number is needed`)
  return n
}

function settingsForm (q, ctx, reload) {
  const form = h('form', {
    class: 'settings',
    'aria-label': 'Settings',
    onsubmit: async (e) => {
      e.preventDefault()
      const changes = {}
      try {
        for (const s of SETTINGS) {
          const value = read(form, s)
          if (JSON.stringify(value) !== JSON.stringify(q[s[0]] ?? null)) changes[s[0]] = value
        }
      } catch (err) {
        ctx.showError(err)
        return
      }
      if (Object.keys(changes).length === 0) {
        ctx.notify('Nothing changed.')
        return
      }
      try {
        await ctx.api('PUT', `/queues/${q.id}`, changes)
        ctx.notify(`Saved: ${Object.keys(changes).join(', ')}.`)
        await reload()
      } catch (err) { ctx.showError(err) }
    }
  },
  h('div', { class: 'grid' }, SETTINGS.map(s => field(s[1], control(q, s), s[3]))),
  h('button', { type: 'submit' }, 'Save settings'))
  return form
}

function actions (q, ctx, reload, secretBox) {
  const act = (label, run) => h('button', {
    type: 'button',
    onclick: async (e) => {
      const button = e.currentTarget
      button.disabled = true
      try { await run() } catch (err) { ctx.showError(err) } finally { button.disabled = false }
    }
  }, label)
  const put = async (changes, said) => {
    await ctx.api('PUT', `/queues/${q.id}`, changes)
    ctx.notify(said)
    await reload()
  }
  return h('div', { class: 'actions', role: 'group', 'aria-label': 'Queue actions' },
    q.paused
      ? act('Resume', () => put({ paused: false }, `${q.name} resumed.`))
      : act('Pause', () => put({ paused: true }, `${q.name} paused: its messages wait.`)),
    q.disabled ? act('Enable', () => put({ disabled: false }, `${q.name} enabled.`)) : null,
    act('Redrive failed messages', async () => {
      const { data } = await ctx.api('POST', `/queues/${q.id}/redrive`)
      ctx.notify(`${data.requeued} failed message${data.requeued === 1 ? '' : 's'} queued again.`)
      await reload()
    }),
    act(q.signed ? 'Rotate signing secret' : 'Create signing secret', async () => {
      const { data } = await ctx.api('POST', `/queues/${q.id}/signing-secret`, {})
      const shown = h('code', { class: 'secret' }, data.signingSecret)
      fill(secretBox,
        h('p', {}, h('strong', {}, 'New signing secret, shown this once: '), 'store it with the receiver now.'),
        shown,
        data.previousValidUntil === null
          ? null
          : h('p', { class: 'muted' }, 'The previous one keeps signing until ', timeEl(data.previousValidUntil), '.'),
        h('button', {
          type: 'button',
          onclick: () => {
            fill(secretBox)
            secretBox.hidden = true
          }
        }, 'I stored it: hide'))
      secretBox.hidden = false
      ctx.notify('Signing secret rotated.')
      await reload()
    }))
}

function replayForm (q, ctx) {
  const since = h('input', { type: 'datetime-local', name: 'since', required: true, step: 1 })
  const until = h('input', { type: 'datetime-local', name: 'until', step: 1 })
  const types = h('input', { type: 'text', name: 'eventTypes' })
  return h('form', {
    class: 'replay',
    'aria-label': 'Replay events',
    onsubmit: async (e) => {
      e.preventDefault()
      const body = { since: new Date(since.value).toISOString() }
      if (until.value !== '') body.until = new Date(until.value).toISOString()
      const list = types.value.split(',').map(s => s.trim()).filter(s => s !== '')
      if (list.length > 0) body.eventTypes = list
      try {
        const { data } = await ctx.api('POST', `/queues/${q.id}/replay`, body)
        ctx.notify(`Replay: ${data.replayed} event(s) sent again${data.more ? '; more remain: replay again' : ''}.`)
      } catch (err) { ctx.showError(err) }
    }
  },
  h('h2', {}, 'Replay events'),
  h('p', { class: 'muted' }, 'Sends again, as new messages, the events this queue matched in the window.'),
  h('div', { class: 'grid' },
    field('Since (local time)', since), field('Until (empty: now)', until),
    field('Only these types', types, 'comma-separated; empty: all it subscribes to')),
  h('button', { type: 'submit' }, 'Replay'))
}

/** where-parameters for a state and a search text (an id, an idempotency key or an event type). */
function filters (queueId, state, search) {
  const where = { 'where.queueId.eq': queueId }
  if (state === 'pending') Object.assign(where, { 'where.sentAt.eq': 'null', 'where.failed.eq': 'false' })
  if (state === 'sent') where['where.sentAt.neq'] = 'null'
  if (state === 'failed') where['where.failed.eq'] = 'true'
  const s = search.trim()
  if (s !== '') {
    // where.or splits on | and reads ) as its end: such a text can only be a key, asked for alone
    if (/[|()]/.test(s)) where['where.idempotencyKey.eq'] = s
    else {
      const id = /^\d{1,15}$/.test(s) ? `id.eq=${s}|` : ''
      where['where.or'] = `(${id}idempotencyKey.eq=${s}|eventType.eq=${s})`
    }
  }
  return where
}

function messageList (q, ctx) {
  let offset = 0
  const state = h('select', { name: 'state' },
    ['all', 'pending', 'sent', 'failed'].map(s => h('option', { value: s }, s)))
  const search = h('input', { type: 'search', name: 'search', placeholder: 'id, idempotency key or event type' })
  const results = h('div', { 'aria-live': 'polite' })
  const load = async () => {
    try {
      const { data, total } = await ctx.api('GET', `/messages${query({
        ...filters(q.id, state.value, search.value), limit: PAGE_SIZE, offset, totalCount: true, 'orderby.id': 'desc'
      })}`)
      fill(results,
        data.length === 0
          ? h('p', { class: 'muted' }, 'No message matches.')
          : table(`Messages of ${q.name}`, MESSAGE_COLUMNS, data.map(m => [
            h('a', { href: `#/messages/${m.id}` }, `#${m.id}`), badge(messageState(m)), timeEl(m.when),
            m.attempts, m.lastStatus ?? '–', m.eventType ?? '–', m.idempotencyKey ?? '–'])),
        pager(offset, PAGE_SIZE, total, (o) => { offset = o; load() }))
    } catch (err) { ctx.showError(err) }
  }
  const form = h('form', {
    class: 'filters',
    role: 'search',
    'aria-label': 'Find messages',
    onsubmit: (e) => { e.preventDefault(); offset = 0; load() }
  }, field('State', state), field('Search', search), h('button', { type: 'submit' }, 'Find'))
  state.addEventListener('change', () => { offset = 0; load() })
  load()
  return [h('h2', {}, 'Messages'), form, results]
}

export async function queuePage (view, ctx, id) {
  const stats = h('dl', { class: 'stats' })
  const status = h('span', { class: 'muted live' })
  const secretBox = h('div', { class: 'secret-box', role: 'region', 'aria-label': 'New signing secret', hidden: true })
  const head = h('div')
  const state = h('span')
  const settings = h('section', { 'aria-labelledby': 'settings-h' })
  const reload = async () => {
    const { data: q } = await ctx.api('GET', `/queues/${id}`)
    document.title = `${q.name} · hookpost`
    fill(state, badge(queueState(q)))
    fill(head,
      h('div', { class: 'title-row' }, h('h1', {}, q.name), state, status),
      h('p', { class: 'muted' }, `#${q.id} · ${q.method} `, h('code', {}, q.callbackUrl)),
      q.disabledReason ? h('p', { class: 'error' }, `Disabled: ${q.disabledReason}`) : null,
      actions(q, ctx, reload, secretBox),
      q.eventTypes.length > 0 ? replayForm(q, ctx) : null)
    fill(settings,
      h('h2', { id: 'settings-h' }, 'Settings'),
      settingsForm(q, ctx, reload),
      h('h3', {}, 'Headers sent with every message'),
      headersList(q.headers),
      h('p', { class: 'muted' }, `Signed: ${q.signed ? 'yes (Standard Webhooks)' : 'no'}`))
    return q
  }
  const q = await reload()
  fill(view, head, secretBox, stats, ...messageList(q, ctx), settings)
  return followOverview(ctx, status, (queues) => {
    const o = queues.find(x => x.id === id)
    if (o === undefined) return
    fill(state, badge(o.state))
    const items = [['Backlog', count(o.pending, COUNT_CAP)], ['Due', count(o.due, COUNT_CAP)],
      ['In flight', count(o.claimed, COUNT_CAP)], ['Delivered (1 h)', count(o.lastHour.delivered)],
      ['Failed (1 h)', count(o.lastHour.failed)], ['Success', percent(o.lastHour.successRate)],
      ['p50', ms(o.lastHour.p50Ms)], ['p99', ms(o.lastHour.p99Ms)]]
    fill(stats, items.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v))))
  })
}
