// Crons: each schedule with its time zone, next five ticks and last tick, paused or resumed here.
import { query } from './api.js'
import { badge, fill, h, pager, table, time, timeEl } from './ui.js'

// the dashboard API's page of crons
const PAGE_SIZE = 100

export async function cronsPage (view, ctx) {
  let offset = 0
  const load = async () => {
    const [{ data: page }, { data: queues }] = await Promise.all([
      ctx.api('GET', `/dashboard/api/crons${query({ offset })}`),
      ctx.api('GET', `/queues${query({ fields: 'id,name', limit: 100 })}`)])
    const names = new Map(queues.map(q => [q.id, q.name]))
    const toggle = (c) => h('button', {
      type: 'button',
      'aria-label': `${c.paused ? 'Resume' : 'Pause'} cron #${c.id}`,
      onclick: async () => {
        try {
          await ctx.api('PUT', `/crons/${c.id}`, { paused: !c.paused })
          ctx.notify(`Cron #${c.id} ${c.paused ? 'resumed' : 'paused'}.`)
          await load()
        } catch (err) { ctx.showError(err) }
      }
    }, c.paused ? 'Resume' : 'Pause')
    fill(view,
      h('h1', {}, 'Crons'),
      page.total === 0
        ? h('p', { class: 'muted' }, 'No crons. Create one with POST /crons.')
        : table('Crons', ['Id', 'Queue', 'Schedule', 'Time zone', 'Next 5 ticks', 'Last tick', 'State', ''],
          page.crons.map(c => [
            `#${c.id}`,
            h('a', { href: `#/queues/${c.queueId}` }, names.get(c.queueId) ?? `#${c.queueId}`),
            h('code', {}, c.schedule),
            c.timezone,
            h('ol', { class: 'ticks' }, c.nextTicks.map(t => h('li', {}, h('time', { datetime: t }, time(t))))),
            timeEl(c.lastTickAt),
            badge(c.paused ? 'paused' : 'active'),
            toggle(c)])),
      page.total > PAGE_SIZE
        ? pager(offset, PAGE_SIZE, page.total, (o) => { offset = o; load().catch(ctx.showError) })
        : null)
  }
  await load()
}
