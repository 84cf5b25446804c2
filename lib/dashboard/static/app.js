// The dashboard's shell: a route per hash (#/, #/queues/1, #/messages/2, #/crons, #/events, #/events/3),
// the sign-in form when the API asks for the admin secret, and one place where errors are shown.
import { ApiError, api, secret } from './api.js'
import { fill, h } from './ui.js'
import { overviewPage } from './overview.js'
import { queuePage } from './queue.js'
import { messagePage } from './message.js'
import { cronsPage } from './crons.js'
import { eventPage, eventsPage } from './events.js'

const ROUTES = [
  [/^#?\/?$/, overviewPage, 'overview'],
  [/^#\/queues\/(\d+)$/, queuePage, 'overview'],
  [/^#\/messages\/(\d+)$/, messagePage, 'overview'],
  [/^#\/crons$/, cronsPage, 'crons'],
  [/^#\/events$/, eventsPage, 'events'],
  [/^#\/events\/(\d+)$/, eventPage, 'events']
]

const main = document.getElementById('main')
const banner = document.getElementById('banner')
const notice = document.getElementById('notice')
const signOut = document.getElementById('sign-out')
let leave = () => {}
let noticeTimer
// each route renders into a view of its own: a page still loading when the user moves on fills a view
// that is no longer shown, and its live parts are stopped as soon as it returns
let generation = 0

/** Shown until the next page: an error from the API, in its words. */
function showError (err) {
  if (err instanceof ApiError && err.needsSecret) {
    signIn(err)
    return
  }
  const text = err instanceof ApiError
    ? `${err.message}${err.code ? ` (${err.code})` : ''}`
    : `Something went wrong in this page: ${err?.message ?? err}`
  fill(banner, text)
  banner.hidden = false
}

function clearError () {
  banner.hidden = true
  fill(banner)
}

/** A short confirmation, read out by screen readers, gone after a while. */
function notify (text) {
  fill(notice, text)
  clearTimeout(noticeTimer)
  noticeTimer = setTimeout(() => fill(notice), 8000)
}

const ctx = { api, showError, clearError, notify, go: (hash) => { location.hash = hash } }

function signIn (err) {
  leave()
  leave = () => {}
  generation++
  clearError()
  // autocomplete off: a password manager would keep the secret beyond the tab, which the page promises not to
  const input = h('input', { id: 'secret', type: 'password', autocomplete: 'off', required: true })
  const wrong = err.status === 403 && secret.get() !== null
  secret.clear()
  signOut.hidden = true
  fill(main,
    h('h1', {}, 'Sign in'),
    h('p', {}, 'This hookpost asks for its admin secret (PLT_ADMIN_SECRET). It is kept in this tab only ' +
      '(sessionStorage) and sent as a header, never in a URL.'),
    wrong ? h('p', { class: 'error', role: 'alert' }, 'That secret was refused.') : null,
    h('form', {
      class: 'sign-in',
      onsubmit: (e) => {
        e.preventDefault()
        secret.set(input.value)
        route()
      }
    },
    h('label', { for: 'secret' }, 'Admin secret'), input, h('button', { type: 'submit' }, 'Sign in')))
  input.focus()
}

async function route () {
  leave()
  leave = () => {}
  clearError()
  signOut.hidden = secret.get() === null
  const hash = location.hash
  const found = ROUTES.find(([re]) => re.test(hash))
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (found !== undefined && a.dataset.nav === found[2]) a.setAttribute('aria-current', 'page')
    else a.removeAttribute('aria-current')
  }
  if (found === undefined) {
    fill(main, h('h1', {}, 'Not found'), h('p', {}, 'No page here. '), h('a', { href: '#/' }, 'Back to the queues'))
    return
  }
  const [re, page] = found
  const args = re.exec(hash).slice(1).map(Number)
  const view = h('div', {}, h('p', { class: 'muted' }, 'Loading…'))
  fill(main, view)
  const mine = ++generation
  try {
    const stop = (await page(view, ctx, ...args)) ?? (() => {})
    if (mine === generation) leave = stop
    else stop()
  } catch (err) {
    if (mine !== generation) return
    showError(err)
    if (!(err instanceof ApiError && err.needsSecret)) fill(view, h('p', {}, h('a', { href: '#/' }, 'Back to queues')))
  }
}

// the skip link moves focus, not the route (its #main is no page)
document.querySelector('.skip').addEventListener('click', (e) => {
  e.preventDefault()
  main.focus()
})
signOut.addEventListener('click', () => {
  secret.clear()
  route()
})
window.addEventListener('hashchange', () => {
  route()
  main.focus()
})
route()
