// Live dashboard for origin-discovery. Static, no build step.
//
// Served by the controller on the public port:
//   GET /               → clients/js/dashboard/index.html
//   GET /dashboard.js   → clients/js/dashboard/dashboard.js   (this file)
//   GET /dashboard.css  → clients/js/dashboard/dashboard.css
//   GET /client/*       → clients/js/src/*                    (the client library, unbundled)
// so `./client/index.js` below resolves to `/client/index.js`. The API it talks to is the same
// origin: `GET /v1/pools` and the `/v1/pools/{ns}/{svc}/watch` WebSocket.

import { OriginDiscovery, connectWithFailover } from './client/index.js';

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
/** @type {import('./client/index.js').FailoverConnection<any>[]} the simulated clients */
let crowd = [];
/** @type {Map<string, any>} the last version of every origin seen, to describe updates */
let known = new Map();
let lastFrameAt = 0;

function clientCount() {
  const n = Number(/** @type {HTMLInputElement} */ ($('client-count')).value);
  return Math.min(5000, Math.max(1, Number.isFinite(n) ? Math.floor(n) : 200));
}

/** Moves of simulated clients since the last timeline entry about them, by reason. */
let moves = { failover: 0, draining: 0, removed: 0, rebalance: 0 };

/**
 * Starts the simulated clients: each one is the real `connectWithFailover` for key
 * `stream-i`, with a stand-in connection that opens at once and never fails by itself, and
 * rebalancing on (unless unticked) with the library's defaults. So the bars show exactly what
 * a pool of real clients would do: stay put while their origin is ready, move at once when
 * it drains or goes away, and — with rebalancing — spread onto capacity that joins later,
 * at most 5 % of the clients per second, never within 10 s of their last move.
 */
function startCrowd() {
  for (const c of crowd) c.close();
  crowd = [];
  moves = { failover: 0, draining: 0, removed: 0, rebalance: 0 };
  const d = discovery;
  if (!d) return;
  const rebalance = /** @type {HTMLInputElement} */ ($('rebalance')).checked;
  const n = clientCount();
  for (let i = 1; i <= n; i++) {
    /** @type {string | null} */
    let last = null;
    /** @type {keyof typeof moves} */
    let why = 'failover';
    crowd.push(
      connectWithFailover(d, `stream-${i}`, () => ({ close() {} }), {
        rebalance,
        onlineEvents: null,
        onMigrate: ({ reason }) => {
          why = reason;
        },
        onConnect: ({ origin }) => {
          if (last !== null && last !== origin.id) moves[why] += 1;
          last = origin.id;
          why = 'failover';
          scheduleRender();
        },
      }),
    );
  }
  scheduleRender();
}

function perOrigin() {
  /** @type {Map<string, number>} */
  const counts = new Map();
  for (const c of crowd) {
    const id = c.origin?.id ?? '';
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

let renderPending = false;
/** Re-renders the table and bars once per frame at most (many clients move at once). */
function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => {
    renderPending = false;
    renderOrigins();
    renderBars();
  });
}

/** Once a second: a timeline entry for the simulated clients that moved in it, if any. */
function reportMoves() {
  const total = moves.failover + moves.draining + moves.removed + moves.rebalance;
  if (!total) return;
  const parts = Object.entries(moves)
    .filter(([, n]) => n > 0)
    .map(([why, n]) => `${n} ${why}`);
  addEntry(Date.now(), 'moves', [h('span', { class: 'moved' }, `${total} client${total === 1 ? '' : 's'} moved`), `(${parts.join(', ')})`]);
  moves = { failover: 0, draining: 0, removed: 0, rebalance: 0 };
}

/** @param {{load?: number}} o */
const formatLoad = (o) => (typeof o.load === 'number' ? `${Math.round(o.load * 100)} %` : '–');

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
        h('td', { class: 'num weight' }, String(o.weight ?? 1)),
        h('td', { class: 'num load' }, formatLoad(o)),
        h('td', { class: 'num' }, String(counts.get(o.id) ?? 0)),
      ),
    ),
  );
}

function renderBars() {
  if (!discovery) return;
  const counts = perOrigin();
  const total = crowd.length || 1;
  const unassigned = counts.get('') ?? 0;
  const rows = discovery.origins.map((o) => {
    const n = counts.get(o.id) ?? 0;
    const bar = h('span', { class: `bar ${o.state}` });
    bar.style.width = `${(100 * n) / total}%`;
    const label = `${o.id}${(o.weight ?? 1) !== 1 ? ` ×${o.weight}` : ''}${typeof o.load === 'number' ? ` · load ${formatLoad(o)}` : ''}`;
    return h('div', { class: 'bar-row' }, h('span', { class: 'bar-label', title: label }, label), h('span', { class: 'bar-track' }, bar), h('span', { class: 'num' }, String(n)));
  });
  if (unassigned) rows.push(h('div', { class: 'bar-row error' }, `${unassigned} clients have no origin right now`));
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
 * What changed in an updated origin: its state, else its weight and load.
 * @param {any} o the new version
 */
function describeUpdate(o) {
  const prev = known.get(o.id);
  if (!prev || prev.state !== o.state) return `${o.id} → ${o.state}`;
  const what = [];
  if ((prev.weight ?? 1) !== (o.weight ?? 1)) what.push(`weight ${o.weight ?? 1}`);
  if (prev.load !== o.load) what.push(`load ${formatLoad(o)}`);
  return `${o.id}: ${what.join(', ') || 'updated'}`;
}

/**
 * @param {{origins: readonly {id: string}[], added: {id: string, state: string, weight?: number}[], updated: {id: string, state: string}[], removed: {id: string}[], reason: string, revision: number | null}} d  a `change` detail
 */
function describeChange(d) {
  /** @type {(Node | string)[]} */
  const parts = [];
  if (d.revision != null) parts.push(h('span', { class: 'rev' }, `r${d.revision}`));
  if (d.reason === 'snapshot') parts.push(`${d.origins.length} origins`);
  for (const o of d.added) {
    const extra = [o.state === 'ready' ? '' : o.state, (o.weight ?? 1) !== 1 ? `weight ${o.weight}` : ''].filter(Boolean).join(', ');
    parts.push(h('span', { class: `chg add ${o.state}` }, `+${o.id}${extra ? ` (${extra})` : ''}`));
  }
  for (const o of d.updated) parts.push(h('span', { class: `chg upd ${o.state}` }, describeUpdate(o)));
  for (const o of d.removed) parts.push(h('span', { class: 'chg del' }, `−${o.id}`));
  return parts;
}

/** @param {string} pool */
function watch(pool) {
  for (const c of crowd) c.close();
  crowd = [];
  discovery?.close();
  discovery = null;
  known = new Map();
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
    flash = new Set([...c.added, ...c.updated].map((o) => o.id));
    /** @type {string | null} */
    let latency = null;
    if (c.reason === 'delta') {
      const upserts = Array.isArray(c.message?.upsert) ? c.message.upsert : [];
      const sinces = upserts.map((/** @type {{since: string}} */ o) => Date.parse(o.since)).filter(Number.isFinite);
      if (sinces.length) latency = `since→received ${formatLatency(c.receivedAt - Math.max(...sinces))}`;
    }
    addEntry(c.receivedAt, c.reason, describeChange(c), latency);
    known = new Map(c.origins.map((o) => [o.id, o]));
    renderOrigins();
    renderBars();
    renderMeta();
  });
  startCrowd();
}

function onHash() {
  const pool = decodeURIComponent(location.hash.replace(/^#/, ''));
  if (pool && pool !== selected) watch(pool);
}

$('client-count').addEventListener('change', startCrowd);
$('rebalance').addEventListener('change', startCrowd);
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
setInterval(reportMoves, 1_000);
