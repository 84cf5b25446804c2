// A message: its body (pretty when JSON) and headers (secrets masked), the attempt timeline, and retry.
// While it is pending the page looks again each second, so a retry is seen delivered.
import { badge, fill, h, headersList, messageState, ms, pretty, timeEl } from './ui.js'

const REFRESH_MS = 1000

function attempt (a) {
  const status = a.statusCode === null ? '' : `HTTP ${a.statusCode}`
  // an HTTP failure is its status; another kind (timeout, connect…) is named
  const outcome = a.errorKind === null || a.errorKind === 'http'
    ? status
    : [a.errorKind, status].filter(x => x !== '').join(' · ')
  return h('li', { class: a.errorKind === null ? 'ok' : 'bad' },
    h('div', { class: 'attempt-head' },
      h('strong', {}, `Attempt ${a.attempt}`), ' · ', timeEl(a.startedAt), ' · ', ms(a.durationMs), ' · ',
      h('span', { class: 'outcome' }, outcome)),
    a.error === null ? null : h('p', { class: 'error-text' }, a.error),
    a.responseBody === null || a.responseBody === ''
      ? null
      : h('details', { open: a.errorKind !== null },
        h('summary', {}, 'Response (first 4 KB)'), h('pre', { class: 'response' }, a.responseBody)))
}

export async function messagePage (view, ctx, id) {
  let timer
  let stopped = false
  const render = async () => {
    const [{ data: m }, { data: attempts }] = await Promise.all([
      ctx.api('GET', `/messages/${id}`), ctx.api('GET', `/messages/${id}/attempts`)])
    const state = messageState(m)
    const retry = h('button', {
      type: 'button',
      disabled: state !== 'failed',
      title: state === 'failed' ? undefined : 'only a failed message can be retried',
      onclick: async () => {
        retry.disabled = true
        try {
          await ctx.api('POST', `/messages/${id}/retry`)
          ctx.notify(`Message #${id} queued again.`)
          await refresh()
        } catch (err) {
          ctx.showError(err)
          retry.disabled = false
        }
      }
    }, 'Retry')
    const facts = [
      ['Queue', h('a', { href: `#/queues/${m.queueId}` }, `#${m.queueId}`)],
      ['When', timeEl(m.when)],
      ['Next attempt', timeEl(m.nextAttemptAt)],
      ['Sent', timeEl(m.sentAt)],
      ['Attempts', String(m.attempts)],
      ['Last status', m.lastStatus ?? '–'],
      ['Last error', m.lastError ?? '–'],
      ['Event', m.eventId === null ? '–' : h('a', { href: `#/events/${m.eventId}` }, `#${m.eventId} ${m.eventType}`)],
      ['Idempotency key', m.idempotencyKey ?? '–'],
      ['Ordering key', m.orderingKey ?? '–'],
      ['Parked (queue paused or disabled)', m.parked ? 'yes' : 'no']
    ]
    fill(view,
      h('div', { class: 'title-row' }, h('h1', {}, `Message #${m.id}`), badge(state), retry),
      h('dl', { class: 'facts' }, facts.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v)))),
      h('h2', {}, 'Body'),
      h('pre', { class: 'body', tabindex: 0 }, m.body === null ? '(none)' : pretty(m.body)),
      h('h2', {}, 'Headers'),
      headersList(m.headers),
      h('h2', {}, 'Attempts'),
      attempts.length === 0
        ? h('p', { class: 'muted' }, 'Not attempted yet.')
        : h('ol', { class: 'timeline', reversed: true }, attempts.slice().reverse().map(attempt)))
    return state
  }
  const refresh = async () => {
    clearTimeout(timer)
    let state
    try { state = await render() } catch (err) { ctx.showError(err); return }
    if (!stopped && state === 'pending') timer = setTimeout(refresh, REFRESH_MS)
  }
  const state = await render()
  if (state === 'pending') timer = setTimeout(refresh, REFRESH_MS)
  return () => {
    stopped = true
    clearTimeout(timer)
  }
}
