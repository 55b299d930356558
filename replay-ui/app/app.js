import { h, clear, notice, route } from './dom.js';
import { get, post, del, setCsrf, ApiError } from './api.js';
import * as sessions from './pages/sessions.js';
import * as recording from './pages/recording.js';
import * as live from './pages/live.js';
import * as inbox from './pages/inbox.js';
import * as policies from './pages/policies.js';
import * as audit from './pages/audit.js';
import * as grants from './pages/grants.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
let me;
let cleanup;
/** Set by a page with unsaved work: () => the question to ask before leaving it, or undefined. */
let leaveGuard;

const PAGES = {
  sessions: { page: sessions, label: 'Sessions', cap: 'audit' },
  recording: { page: recording, cap: 'audit' },
  live: { page: live, label: 'Live', cap: 'audit' },
  inbox: { page: inbox, label: 'Inbox', cap: 'approve' },
  policies: { page: policies, label: 'Policies', cap: 'editPolicies' },
  grants: { page: grants, label: 'Grants', cap: 'approve' },
  audit: { page: audit, label: 'Audit', cap: 'audit' },
};

/** The Inbox link's count of items this person may decide, refreshed on a timer and by the Inbox page. */
const inboxCount = h('span', { class: 'count hidden', id: 'inbox-count', 'aria-label': 'pending' });
let countTimer;
function showCount(n) {
  inboxCount.textContent = String(n);
  inboxCount.classList.toggle('hidden', !(n > 0));
}
window.addEventListener('pam:inbox-count', (e) => showCount(e.detail));
function pollCount() {
  clearInterval(countTimer);
  countTimer = undefined;
  if (!me?.can.approve) return;
  const once = () => { if (me) void get('/api/v1/inbox/count').then((r) => showCount(r.pending), () => undefined); };
  once();
  countTimer = setInterval(once, 10_000);
}

function renderNav() {
  clear(nav, ...Object.entries(PAGES).filter(([, p]) => p.label && me.can[p.cap]).map(([k, p]) => h('a', { href: `#/${k}`, 'data-page': k }, p.label, k === 'inbox' ? inboxCount : null)));
  pollCount();
  clear(who, h('span', { class: 'user' }, me.user), ' ', h('span', { class: 'muted' }, `(${me.roles.join(', ') || 'no roles'})`), ' ',
    h('button', { type: 'button', class: 'link', onclick: signOut }, 'Sign out'));
}

async function signOut() {
  const unsaved = leaveGuard?.();
  if (unsaved && !window.confirm(unsaved)) return;
  leaveGuard = undefined;
  clearInterval(countTimer);
  await del('/api/v1/session').catch(() => undefined);
  me = undefined;
  setCsrf('');
  location.hash = '#/';
  await start();
}

function firstPage() {
  if (me.can.audit) return 'sessions';
  if (me.can.approve) return 'inbox';
  if (me.can.editPolicies) return 'policies';
  return undefined;
}

/** Counts dispatches: a page whose render finishes after a newer dispatch began is stopped at once. */
let generation = 0;

/** Runs a page's cleanup (its player, timers and polling), if it has one. */
function stopPage(fn) {
  try { fn?.(); } catch { /* page already gone */ }
}

async function dispatch() {
  const mine = ++generation;
  stopPage(cleanup);
  cleanup = undefined;
  leaveGuard = undefined;
  if (!me) return;
  const r = route();
  const name = r.parts[0] ?? firstPage();
  for (const a of nav.querySelectorAll('a')) a.classList.toggle('active', a.dataset.page === name);
  const entry = name ? PAGES[name] : undefined;
  if (!entry) {
    clear(main, notice('Your roles give you no pages here. Ask for can_audit, can_approve or can_edit_policies.', 'error'));
    return;
  }
  if (!me.can[entry.cap]) {
    clear(main, notice('You are not allowed to see this page.', 'error'));
    return;
  }
  // Each dispatch renders into its own slot: a slower earlier render (a hash changed while its
  // fetches were in flight) fills a slot no longer in the page and cannot overwrite the new one.
  const slot = h('div', { class: 'page-slot' }, h('p', { class: 'muted' }, 'Loading…'));
  clear(main, slot);
  try {
    const done = await entry.page.render(slot, { me, params: r.parts.slice(1), query: r.query, guardLeave: (fn) => { if (mine === generation) leaveGuard = fn; } });
    if (mine === generation) cleanup = done;
    else stopPage(done);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return undefined; // signedOut() took over
    if (mine === generation) clear(slot, notice(err.message ?? String(err), 'error'));
  }
}

async function signInPage() {
  clear(nav);
  clear(who);
  const info = await get('/auth/info').catch(() => ({ dev: false, oidc: false }));
  const box = h('section', { class: 'signin card' }, h('h1', {}, 'Sign in'));
  if (info.oidc) box.append(h('p', {}, h('a', { class: 'button', href: '#/', id: 'oidc-login', onclick: (e) => { e.preventDefault(); location.assign('/auth/login'); } }, 'Sign in with your identity provider')));
  if (info.dev) {
    const user = h('input', { name: 'user', id: 'dev-user', placeholder: 'user', required: true, autocomplete: 'username' });
    const groups = h('input', { name: 'groups', id: 'dev-groups', placeholder: 'groups, comma-separated' });
    const secret = h('input', { name: 'secret', id: 'dev-secret', type: 'password', placeholder: 'the latest one pam serve printed', required: true, autocomplete: 'off' });
    const msg = h('div');
    const form = h('form', { class: 'stack', onsubmit: async (e) => {
      e.preventDefault();
      try {
        const s = await post('/auth/dev', { user: user.value, groups: groups.value, secret: secret.value });
        setCsrf(s.csrf);
        me = s;
        renderNav();
        await dispatch();
      } catch (err) {
        clear(msg, notice(err.message, 'error'));
      }
    } },
    h('p', { class: 'muted' }, 'Dev issuer: sign in as any user with any groups. Only offered when the proxy runs with identity.dev on loopback.'),
    h('label', { for: 'dev-user' }, 'User'), user, h('label', { for: 'dev-groups' }, 'Groups'), groups,
    h('label', { for: 'dev-secret' }, 'Dev sign-in secret (single-use; see the pam serve output)'), secret,
    h('button', { type: 'submit', id: 'dev-signin' }, 'Sign in'), msg);
    box.append(form);
  }
  if (!info.dev && !info.oidc) box.append(notice('No browser sign-in is configured. Use POST /api/v1/session with a bearer token.'));
  clear(main, box);
}

async function start() {
  try {
    me = await get('/api/v1/session');
    setCsrf(me.csrf);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return signInPage();
    clear(main, notice(err.message, 'error'));
    return;
  }
  renderNav();
  await dispatch();
}

/** Any 401 while signed in: stop the page (its polling too) and sign in again; the hash stays, so the same page opens after. */
function signedOut() {
  if (!me) return;
  me = undefined;
  setCsrf('');
  leaveGuard = undefined;
  clearInterval(countTimer);
  generation++; // a render still in flight is stopped when it finishes
  stopPage(cleanup);
  cleanup = undefined;
  void signInPage().then(() => main.prepend(notice('Your session ended or expired. Sign in again to go back to this page.')));
}

window.addEventListener('pam:signed-out', signedOut);
/** In-app navigation away from unsaved work asks first; staying puts the old address back. */
let restoring = false;
window.addEventListener('hashchange', (e) => {
  if (restoring) { restoring = false; return; }
  const unsaved = me ? leaveGuard?.() : undefined;
  if (unsaved && !window.confirm(unsaved)) {
    restoring = true;
    location.hash = new URL(e.oldURL).hash;
    return;
  }
  void dispatch();
});
void start();
