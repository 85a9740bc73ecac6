// The test page: keeps one "media" WebSocket to an origin and echoes on it continuously,
// recording which origin answered when (`window.T`, read by the test through Playwright).
//
//   echo.html?mode=od&api=http://127.0.0.1:P&pool=demo/echo&key=stream-1
//     origin-discovery: the client is imported from the controller (`<api>/client/index.js`)
//     and `connectWithFailover` keeps the socket on a live origin.
//   echo.html?mode=baseline&target=ws://127.0.0.1:P/&retryFloor=3000
//     today's setup: one fixed address (a Service VIP) and, after any failure, a retry no
//     sooner than `retryFloor` ms later (Ant Media's JS SDK reconnects after 3 s).
//
// Every reply of the echo origins is {"origin": NAME, "data": <what we sent>}.

const q = new URLSearchParams(location.search);
const mode = q.get('mode');
const INTERVAL = Number(q.get('interval') ?? 25);

const T = {
  mode,
  ready: false,
  error: null,
  /** @type {any[]} */ events: [],
  /** contiguous runs of replies from one connection: {conn, origin, first, last, count} */
  /** @type {any[]} */ segments: [],
  sent: 0,
  received: 0,
  /** the sender timer fired more than 4 intervals late (page throttled or starved) */
  lateTicks: 0,
  maxTickGap: 0,
  visibility: document.visibilityState,
};
/** @type {any} */ (window).T = T;
window.addEventListener('error', (e) => (T.error = String(e.message)));
window.addEventListener('unhandledrejection', (e) => (T.error = String(e.reason?.message ?? e.reason)));

/** @param {string} type @param {Record<string, unknown>} [detail] */
function ev(type, detail = {}) {
  T.events.push({ t: Date.now(), type, ...detail });
  if (T.events.length > 20000) T.events.splice(0, 5000);
}

let connSeq = 0;
/** @type {WebSocket | null} the socket the application sends on */
let current = null;

/** @param {WebSocket & {__id?: number, __origin?: string}} ws @param {string} origin */
function track(ws, origin) {
  ws.__id = ++connSeq;
  ws.__origin = origin;
  const conn = ws.__id;
  ev('ws-new', { conn, origin });
  ws.addEventListener('open', () => ev('ws-open', { conn, origin }));
  ws.addEventListener('close', (e) => ev('ws-close', { conn, origin, code: e.code, wasClean: e.wasClean }));
  ws.addEventListener('message', (e) => onReply(conn, e.data));
}

/** @param {number} conn @param {unknown} data */
function onReply(conn, data) {
  const now = Date.now();
  let origin;
  try {
    origin = JSON.parse(String(data)).origin;
  } catch {
    return;
  }
  T.received++;
  let seg = T.segments[T.segments.length - 1];
  if (!seg || seg.conn !== conn || seg.origin !== origin) {
    seg = { conn, origin, first: now, last: now, count: 0 };
    T.segments.push(seg);
    if (T.segments.length > 5000) T.segments.splice(0, 1000);
  }
  seg.last = now;
  seg.count++;
}

function send() {
  if (current && current.readyState === WebSocket.OPEN) {
    T.sent++;
    current.send(JSON.stringify({ seq: T.sent, at: Date.now() }));
  }
}

let lastTick = performance.now();
setInterval(() => {
  const now = performance.now();
  const gap = now - lastTick;
  lastTick = now;
  if (gap > T.maxTickGap) T.maxTickGap = gap;
  if (gap > 4 * INTERVAL) T.lateTicks++;
  send();
}, INTERVAL);

async function startOriginDiscovery() {
  const api = /** @type {string} */ (q.get('api'));
  const pool = /** @type {string} */ (q.get('pool'));
  const key = /** @type {string} */ (q.get('key'));
  const { OriginDiscovery, connectWithFailover } = await import(`${api}/client/index.js`);
  const discovery = new OriginDiscovery({ urls: [api], pool, heartbeatTimeout: 3_000 });
  const ids = (/** @type {any[]} */ l) => l.map((o) => `${o.id}:${o.state}`);
  discovery.on('change', (/** @type {any} */ d) =>
    ev('change', { revision: d.revision, reason: d.reason, added: ids(d.added), updated: ids(d.updated), removed: ids(d.removed) }),
  );
  discovery.on('disconnect', (/** @type {any} */ d) => ev('discovery-disconnect', { reason: d.reason, code: d.code }));
  const handle = connectWithFailover(
    discovery,
    key,
    (/** @type {any} */ origin) => {
      const ws = new WebSocket(`${origin.url}?client=od`);
      track(ws, origin.id);
      return ws;
    },
    {
      onConnect: (/** @type {any} */ { connection, origin, migrated, previous }) => {
        current = connection;
        ev('connect', { conn: connection.__id, origin: origin.id, migrated, previous: previous?.id ?? null });
        send();
      },
      onFailover: (/** @type {any} */ { from, to, error, reason }) =>
        ev('failover', { from: from?.id ?? null, to: to?.id ?? null, reason, error: error?.message }),
      onMigrate: (/** @type {any} */ { from, to, reason }) => ev('migrate', { from: from.id, to: to?.id ?? null, reason }),
      onRetry: (/** @type {any} */ { attempt, delay }) => ev('retry', { attempt, delay }),
      onGiveUp: () => ev('giveup'),
      close: (/** @type {any} */ conn) => {
        ev('client-close', { conn: conn.__id, origin: conn.__origin, readyState: conn.readyState });
        if (current === conn) current = null;
        conn.close(1000, 'moving');
      },
    },
  );
  /** @type {any} */ (window).handle = handle;
  await discovery.ready;
}

function startBaseline() {
  const target = /** @type {string} */ (q.get('target'));
  const floor = Number(q.get('retryFloor') ?? 3_000);
  const connect = () => {
    const ws = new WebSocket(target);
    track(ws, 'vip');
    ws.addEventListener('open', () => {
      current = ws;
      ev('connect', { conn: /** @type {any} */ (ws).__id });
      send();
    });
    ws.addEventListener('close', () => {
      if (current === ws) current = null;
      ev('retry', { delay: floor });
      setTimeout(connect, floor);
    });
  };
  connect();
}

try {
  if (mode === 'od') await startOriginDiscovery();
  else if (mode === 'baseline') startBaseline();
  else throw new Error(`unknown mode ${mode}`);
  document.getElementById('title').textContent = `echo page (${mode})`;
  T.ready = true;
} catch (e) {
  T.error = String(/** @type {Error} */ (e)?.message ?? e);
}
