// Live dashboard for origin-discovery. Static, no build step.
//
// Served by the controller on the public port:
//   GET /               → clients/js/dashboard/index.html
//   GET /dashboard.js   → clients/js/dashboard/dashboard.js   (this file)
//   GET /dashboard.css  → clients/js/dashboard/dashboard.css
//   GET /client/*       → clients/js/src/*                    (the client library, unbundled)
// so `./client/index.js` below resolves to `/client/index.js`. The API it talks to is the same
// origin: `GET /v1/pools` and the `/v1/pools/{ns}/{svc}/watch` WebSocket.

import { OriginDiscovery, rank } from './client/index.js';

const POOLS_REFRESH_MS = 5_000;
const TIMELINE_MAX = 300;

/** @param {string} id */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

/**
 * Tiny DOM builder; text always goes through textContent (no HTML injection from data).
 * @param {string} tag
 * @param {Record<string, string> | null} [attrs]
 * @param {...(Node | string | null | undefined)} children
 */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) el.setAttribute(k, v);
  for (const c of children) if (c != null) el.append(c);
  return el;
}

/** @param {number} ms */
function formatAge(ms) {
  if (!Number.isFinite(ms)) return '–';
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `${hrs}h ${m % 60}m`;
  return `${Math.floor(hrs / 24)}d`;
}

/** @param {number} t epoch ms */
function clock(t) {
  const d = new Date(t);
  const pad = (/** @type {number} */ n, w = 2) => String(n).padStart(w, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** @param {number} ms */
function formatLatency(ms) {
  return Math.abs(ms) < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

// ---------------------------------------------------------------------------------------------
// Pools list

/** @type {string | null} */
let selected = null;

async function refreshPools() {
  const list = $('pools');
  const err = $('pools-error');
  try {
    const res = await fetch('/v1/pools', { headers: { accept: 'application/json' } });
    if (!res.ok) throw new Error(`GET /v1/pools: HTTP ${res.status}`);
    const body = await res.json();
    /** @type {{pool: string, revision: number, ready: number, draining: number}[]} */
    const pools = body.pools ?? [];
    err.hidden = true;
    list.replaceChildren(
      ...pools.map((p) => {
        const a = h(
          'a',
          { href: `#${p.pool}`, class: p.pool === selected ? 'active' : '' },
          h('span', { class: 'pool-id' }, p.pool),
          h(
            'span',
            { class: 'pool-counts' },
            h('span', { class: 'count ready', title: 'ready' }, String(p.ready)),
            p.draining ? h('span', { class: 'count draining', title: 'draining' }, String(p.draining)) : null,
            h('span', { class: 'rev', title: 'revision' }, `r${p.revision}`),
          ),
        );
        return h('li', null, a);
      }),
    );
    if (pools.length === 0) list.replaceChildren(h('li', { class: 'hint' }, 'No pools yet.'));
    if (!selected && pools.length > 0 && !location.hash) location.hash = pools[0].pool;
  } catch (e) {
    err.textContent = `Cannot list pools: ${/** @type {Error} */ (e).message}`;
    err.hidden = false;
  }
}

// ---------------------------------------------------------------------------------------------
// One pool's live view

/** @type {OriginDiscovery | null} */
let discovery = null;
/** @type {Map<string, string>} simulated client key → origin id */
let assignment = new Map();
let lastFrameAt = 0;

function clientCount() {
  const n = Number(/** @type {HTMLInputElement} */ ($('client-count')).value);
  return Math.min(5000, Math.max(1, Number.isFinite(n) ? Math.floor(n) : 200));
}

/**
 * Places the simulated clients the way `connectWithFailover` behaves: a client stays on its
 * origin while that origin is ready, and only when it drains or disappears moves to its
 * first-ranked ready origin. Returns how many clients moved.
 * @param {readonly {id: string, state: string}[]} origins
 */
function reassign(origins) {
  const ready = new Set(origins.filter((o) => o.state === 'ready').map((o) => o.id));
  /** @type {Map<string, string>} */
  const next = new Map();
  let moved = 0;
  const n = clientCount();
  for (let i = 1; i <= n; i++) {
    const key = `stream-${i}`;
    const before = assignment.get(key);
    let target = before;
    if (target === undefined || !ready.has(target)) {
      target = rank(/** @type {any} */ (origins), key, { count: 1 })[0]?.id ?? '';
      if (before !== undefined && before !== target) moved++;
    }
    next.set(key, target);
  }
  assignment = next;
  return moved;
}

function perOrigin() {
  /** @type {Map<string, number>} */
  const counts = new Map();
  for (const id of assignment.values()) counts.set(id, (counts.get(id) ?? 0) + 1);
  return counts;
}

/** @type {Set<string>} origins changed by the last change, highlighted briefly */
let flash = new Set();

function renderOrigins() {
  if (!discovery) return;
  const origins = discovery.origins;
  const counts = perOrigin();
  const now = Date.now();
  $('no-origins').hidden = origins.length > 0;
  $('origins').replaceChildren(
    ...origins.map((o) =>
      h(
        'tr',
        { class: `${o.state}${flash.has(o.id) ? ' flash' : ''}` },
        h('td', { class: 'id' }, o.url ? h('span', { title: o.url }, o.id) : o.id),
        h('td', null, h('span', { class: `badge ${o.state}` }, o.state)),
        h('td', null, o.zone ?? '–'),
        h('td', null, o.node ?? '–'),
        h('td', { class: 'mono' }, `${o.ip}:${o.port}`),
        h('td', { class: 'num', 'data-since': o.since, title: o.since }, formatAge(now - Date.parse(o.since))),
        h('td', { class: 'num' }, String(counts.get(o.id) ?? 0)),
      ),
    ),
  );
}

function renderBars() {
  if (!discovery) return;
  const counts = perOrigin();
  const total = assignment.size || 1;
  const unassigned = counts.get('') ?? 0;
  const rows = discovery.origins.map((o) => {
    const n = counts.get(o.id) ?? 0;
    const bar = h('span', { class: `bar ${o.state}` });
    bar.style.width = `${(100 * n) / total}%`;
    return h('div', { class: 'bar-row' }, h('span', { class: 'bar-label' }, o.id), h('span', { class: 'bar-track' }, bar), h('span', { class: 'num' }, String(n)));
  });
  if (unassigned) rows.push(h('div', { class: 'bar-row error' }, `${unassigned} clients have no ready origin`));
  $('bars').replaceChildren(...rows);
}

/** Updates the age column without rebuilding the table. */
function tickAges() {
  const now = Date.now();
  for (const td of document.querySelectorAll('td[data-since]')) {
    td.textContent = formatAge(now - Date.parse(/** @type {string} */ (td.getAttribute('data-since'))));
  }
  if (discovery) renderMeta();
}

/**
 * @param {string} text
 * @param {string} kind
 */
function setStatus(text, kind) {
  const el = $('status');
  el.textContent = text;
  el.className = `pill pill-${kind}`;
}

function renderMeta() {
  if (!discovery) return;
  const parts = [];
  if (discovery.epoch != null) parts.push(`epoch ${discovery.epoch}`);
  if (discovery.revision != null) parts.push(`revision ${discovery.revision}`);
  if (lastFrameAt) parts.push(`last frame ${formatAge(Date.now() - lastFrameAt)} ago`);
  $('meta').textContent = parts.join(' · ');
}

/**
 * Adds a timeline entry (newest first).
 * @param {number} at
 * @param {string} kind
 * @param {(Node | string)[]} body
 * @param {string | null} [latency]
 */
function addEntry(at, kind, body, latency = null) {
  const list = $('timeline');
  const li = h(
    'li',
    { class: `entry ${kind}` },
    h('time', { title: new Date(at).toISOString() }, clock(at)),
    h('span', { class: 'kind' }, kind),
    h('span', { class: 'body' }, ...body),
    latency ? h('span', { class: 'latency', title: 'receive time in this browser minus the newest `since` of the upserted origins' }, latency) : null,
  );
  list.prepend(li);
  while (list.children.length > TIMELINE_MAX) list.lastElementChild?.remove();
}

/**
 * @param {{origins: readonly {id: string}[], added: {id: string, state: string}[], updated: {id: string, state: string}[], removed: {id: string}[], reason: string, revision: number | null}} d  a `change` detail
 * @param {number} moved
 */
function describeChange(d, moved) {
  /** @type {(Node | string)[]} */
  const parts = [];
  if (d.revision != null) parts.push(h('span', { class: 'rev' }, `r${d.revision}`));
  if (d.reason === 'snapshot') parts.push(`${d.origins.length} origins`);
  for (const o of d.added) parts.push(h('span', { class: `chg add ${o.state}` }, `+${o.id}${o.state === 'ready' ? '' : ` (${o.state})`}`));
  for (const o of d.updated) parts.push(h('span', { class: `chg upd ${o.state}` }, `${o.id} → ${o.state}`));
  for (const o of d.removed) parts.push(h('span', { class: 'chg del' }, `−${o.id}`));
  if (moved) parts.push(h('span', { class: 'moved' }, `${moved} client${moved === 1 ? '' : 's'} moved`));
  return parts;
}

/** @param {string} pool */
function watch(pool) {
  discovery?.close();
  discovery = null;
  assignment = new Map();
  lastFrameAt = 0;
  flash = new Set();
  selected = pool;
  for (const a of document.querySelectorAll('#pools a')) a.classList.toggle('active', a.getAttribute('href') === `#${pool}`);
  $('empty').hidden = true;
  $('pool-view').hidden = false;
  $('pool-title').textContent = pool;
  $('timeline').replaceChildren();
  $('origins').replaceChildren();
  $('bars').replaceChildren();
  setStatus('connecting…', 'idle');

  let d;
  try {
    d = new OriginDiscovery({ urls: [location.origin], pool });
  } catch (e) {
    setStatus(`invalid pool: ${/** @type {Error} */ (e).message}`, 'down');
    return;
  }
  discovery = d;
  d.on('connect', () => setStatus(d.stale ? 'live · stale' : 'live', d.stale ? 'stale' : 'live'));
  d.on('disconnect', (e) => {
    setStatus(`reconnecting (${e.reason})`, 'down');
    addEntry(Date.now(), 'disconnect', [`${e.reason}${e.code ? ` (code ${e.code})` : ''}; retrying in ${formatLatency(e.retryIn)}`]);
  });
  d.on('stale', ({ stale }) => {
    setStatus(stale ? 'live · stale' : 'live', stale ? 'stale' : 'live');
    addEntry(Date.now(), 'stale', [stale ? 'apiserver unreachable: list kept, marked stale' : 'apiserver reachable again']);
  });
  d.on('removed', () => addEntry(Date.now(), 'removed', ['the pool was removed']));
  d.on('message', ({ receivedAt }) => {
    lastFrameAt = receivedAt;
  });
  d.on('change', (c) => {
    schedulePoolsRefresh();
    const moved = reassign(c.origins);
    flash = new Set([...c.added, ...c.updated].map((o) => o.id));
    /** @type {string | null} */
    let latency = null;
    if (c.reason === 'delta') {
      const upserts = Array.isArray(c.message?.upsert) ? c.message.upsert : [];
      const sinces = upserts.map((/** @type {{since: string}} */ o) => Date.parse(o.since)).filter(Number.isFinite);
      if (sinces.length) latency = `since→received ${formatLatency(c.receivedAt - Math.max(...sinces))}`;
    }
    addEntry(c.receivedAt, c.reason, describeChange(c, moved), latency);
    renderOrigins();
    renderBars();
    renderMeta();
  });
}

function onHash() {
  const pool = decodeURIComponent(location.hash.replace(/^#/, ''));
  if (pool && pool !== selected) watch(pool);
}

$('client-count').addEventListener('change', () => {
  if (!discovery) return;
  assignment = new Map();
  reassign(discovery.origins);
  renderOrigins();
  renderBars();
});
window.addEventListener('hashchange', onHash);
onHash();
/** Refreshes the pool list soon after a change (debounced), so its counts follow the table. */
let poolsRefreshTimer = null;
function schedulePoolsRefresh() {
  if (poolsRefreshTimer !== null) return;
  poolsRefreshTimer = setTimeout(() => {
    poolsRefreshTimer = null;
    refreshPools();
  }, 200);
}

refreshPools();
setInterval(refreshPools, POOLS_REFRESH_MS);
setInterval(tickAges, 1_000);
