// Events: the newest first, filtered by type; an event's page shows its payload and its delivery to
// each endpoint it went to.
import { query } from './api.js'
import { badge, field, fill, h, headersList, pager, pretty, table, timeEl } from './ui.js'

const PAGE_SIZE = 20

export async function eventsPage (view, ctx) {
  let offset = 0
  const type = h('input', { type: 'search', name: 'type', placeholder: 'e.g. order.created' })
  const results = h('div', { 'aria-live': 'polite' })
  const load = async () => {
    const t = type.value.trim()
    const { data, total } = await ctx.api('GET', `/events${query({
      'where.type.eq': t === '' ? undefined : t, limit: PAGE_SIZE, offset, totalCount: true, 'orderby.id': 'desc'
    })}`)
    fill(results,
      data.length === 0
        ? h('p', { class: 'muted' }, t === '' ? 'No events yet: publish one with POST /events.' : 'None of that type.')
        : table('Events', ['Id', 'Type', 'Published', 'Endpoints'],
          data.map(e =>
            [h('a', { href: `#/events/${e.id}` }, `#${e.id}`), e.type, timeEl(e.createdAt), e.endpoints])),
      pager(offset, PAGE_SIZE, total, (o) => { offset = o; load().catch(ctx.showError) }))
  }
  fill(view,
    h('h1', {}, 'Events'),
    h('form', {
      class: 'filters',
      role: 'search',
      'aria-label': 'Find events',
      onsubmit: (e) => { e.preventDefault(); offset = 0; load().catch(ctx.showError) }
    }, field('Type', type), h('button', { type: 'submit' }, 'Find')),
    results)
  await load()
}

export async function eventPage (view, ctx, id) {
  const { data: e } = await ctx.api('GET', `/events/${id}`)
  fill(view,
    h('h1', {}, `Event #${e.id} `, h('code', {}, e.type)),
    h('p', { class: 'muted' }, 'Published ', timeEl(e.createdAt), ` to ${e.endpoints} endpoint(s)`,
      e.idempotencyKey ? ` · idempotency key ${e.idempotencyKey}` : ''),
    h('h2', {}, 'Deliveries'),
    e.deliveries.length === 0
      ? h('p', { class: 'muted' }, 'No queue was subscribed to it.')
      : table('Deliveries', ['Queue', 'Message', 'State', 'Attempts', 'Last status', 'Last error', 'Sent'],
        e.deliveries.map(d => [h('a', { href: `#/queues/${d.queueId}` }, `#${d.queueId}`),
          h('a', { href: `#/messages/${d.messageId}` }, `#${d.messageId}${d.replay ? ' (replay)' : ''}`),
          badge(d.state), d.attempts, d.lastStatus ?? '–', d.lastError ?? '–', timeEl(d.sentAt)])),
    h('h2', {}, 'Payload'),
    h('pre', { class: 'body', tabindex: 0 }, pretty(e.payload)),
    h('h2', {}, 'Headers'),
    headersList(e.headers))
}
