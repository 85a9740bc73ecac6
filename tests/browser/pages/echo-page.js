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
// Optional:
//   stall=MS      the application's own liveness check: no echo for MS ms on the media
//                 socket (or an attempt not open after MS ms, baseline) counts as dead —
//                 od: `handle.fail()`; baseline: the socket is dropped and retried after the
//                 floor. Off by default (a frozen origin's socket then never fails);
//                 `window.setStall(MS)` changes it at run time (0: off).
//   via=ws://H:P  reach media through the viewer proxy (lib/viewer-proxy.mjs):
//                 `ws://127.0.0.1:PORT/x` becomes `${via}/up/PORT/x`. At run time
//                 `window.reroute(VIA, DISC)` moves the page onto another network — od: a new
//                 discovery watch on DISC and a new handle (same session state), then the old
//                 ones closed; baseline: the socket closed and retried through VIA after the
//                 floor.
//   disc=URL      od: the discovery base URL; default `api` (which always serves the client).
//   page=N        this page's number (in the echo servers' logs and the session state).
//   session=1     od: pass session state {streamId, publish, viewer} to connectWithFailover and
//                 send it as the first message of every media connection:
//                 {"type":"session","page":N,"conn":C,"session":…}, recorded by the origin.
//
// Every reply of the echo origins is {"origin": NAME, "data": <what we sent>}.

const q = new URLSearchParams(location.search);
const mode = q.get('mode');
const INTERVAL = Number(q.get('interval') ?? 25);
let stall = Number(q.get('stall') ?? 0);
/** @type {any} */ (window).setStall = (/** @type {number} */ ms) => (stall = ms);
let via = q.get('via');
const PAGE = q.get('page') ?? '0';
/** A gap between two echoes longer than this is recorded in `T.gaps`. */
const GAP_MS = 300;

/** `ws://127.0.0.1:PORT/path` through the viewer proxy, if there is one. @param {string} url */
function routed(url) {
  if (!via) return url;
  const u = new URL(url);
  return `${via}/up/${u.port}${u.pathname}${u.search}`;
}

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
  /** when the last echo arrived (any connection) */
  lastReplyAt: 0,
  /** silences longer than GAP_MS between two echoes: {from, to, conn, origin} (to = the echo that ended it) */
  /** @type {any[]} */ gaps: [],
  /** the session state this page publishes (session=1) */
  /** @type {any} */ session: null,
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
/** tracked sockets by id, for the liveness check */
/** @type {Map<number, any>} */
const sockets = new Map();

/** @param {WebSocket & {__id?: number, __origin?: string}} ws @param {string} origin */
function track(ws, origin) {
  ws.__id = ++connSeq;
  ws.__origin = origin;
  /** @type {any} */ (ws).__activity = Date.now();
  const conn = ws.__id;
  ev('ws-new', { conn, origin });
  sockets.set(conn, ws);
  ws.addEventListener('open', () => {
    /** @type {any} */ (ws).__activity = Date.now();
    ev('ws-open', { conn, origin });
  });
  ws.addEventListener('close', (e) => {
    sockets.delete(conn);
    ev('ws-close', { conn, origin, code: e.code, wasClean: e.wasClean });
  });
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
  if (T.lastReplyAt && now - T.lastReplyAt > GAP_MS) {
    T.gaps.push({ from: T.lastReplyAt, to: now, conn, origin });
    if (T.gaps.length > 1000) T.gaps.splice(0, 500);
  }
  T.lastReplyAt = now;
  const ws = sockets.get(conn);
  if (ws) ws.__activity = now;
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
  if (q.get('session') === '1') T.session = { streamId: key, publish: { video: 'h264', bitrate: 2500 }, viewer: PAGE };
  const ids = (/** @type {any[]} */ l) => l.map((o) => `${o.id}:${o.state}`);
  /** @type {any} */ let discovery = null;
  /** @type {any} */ let handle = null;
  /** A discovery watch on `url` and a connectWithFailover handle on it. @param {string} url */
  const start = (url) => {
    discovery = new OriginDiscovery({ urls: [url], pool, heartbeatTimeout: 3_000 });
    discovery.on('change', (/** @type {any} */ d) =>
      ev('change', { revision: d.revision, reason: d.reason, added: ids(d.added), updated: ids(d.updated), removed: ids(d.removed) }),
    );
    discovery.on('disconnect', (/** @type {any} */ d) => ev('discovery-disconnect', { reason: d.reason, code: d.code }));
    discovery.on('sync', (/** @type {any} */ d) => ev('sync', { resumed: d.resumed }));
    handle = connectWithFailover(
      discovery,
      key,
      (/** @type {any} */ origin) => {
        const ws = new WebSocket(`${routed(origin.url)}?client=od&page=${PAGE}`);
        track(ws, origin.id);
        return ws;
      },
      {
        ...(T.session ? { session: T.session } : {}),
        onConnect: (/** @type {any} */ { connection, origin, migrated, previous, session }) => {
          current = connection;
          ev('connect', { conn: connection.__id, origin: origin.id, migrated, previous: previous?.id ?? null });
          if (T.session) connection.send(JSON.stringify({ type: 'session', page: PAGE, conn: connection.__id, session }));
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
  };
  start(q.get('disc') ?? api);
  /** @type {any} */ (window).reroute = (/** @type {string} */ mediaVia, /** @type {string} */ discUrl) => {
    // The viewer joins another network: a new watch and handle there (same session state),
    // then the old ones go.
    via = mediaVia;
    const old = { discovery, handle };
    ev('reroute', { via: mediaVia, disc: discUrl });
    start(discUrl);
    old.handle.close();
    old.discovery.close();
  };
  setInterval(() => {
    const c = /** @type {any} */ (current);
    if (stall > 0 && c && c.readyState === WebSocket.OPEN && Date.now() - c.__activity > stall) {
      ev('stall', { conn: c.__id, origin: c.__origin });
      c.__activity = Date.now(); // one report per stall
      handle.fail(new Error(`media stalled: no echo for ${stall} ms`));
    }
  }, 100);
  await discovery.ready;
}

function startBaseline() {
  const target = /** @type {string} */ (q.get('target'));
  const floor = Number(q.get('retryFloor') ?? 3_000);
  /** @type {any} */
  let latest = null;
  const retry = (/** @type {any} */ ws) => {
    if (ws.__done) return;
    ws.__done = true;
    if (current === ws) current = null;
    ev('retry', { delay: floor });
    setTimeout(connect, floor);
  };
  const connect = () => {
    const url = routed(target);
    const ws = /** @type {any} */ (new WebSocket(`${url}${url.includes('?') ? '&' : '?'}page=${PAGE}`));
    latest = ws;
    track(ws, 'vip');
    ws.addEventListener('open', () => {
      current = ws;
      ev('connect', { conn: ws.__id });
      send();
    });
    ws.addEventListener('close', () => retry(ws));
  };
  // Dropped without waiting for a close handshake a frozen peer never answers.
  setInterval(() => {
    const ws = latest;
    if (stall > 0 && ws && !ws.__done && Date.now() - ws.__activity > stall) {
      ev('stall', { conn: ws.__id });
      ws.close();
      retry(ws);
    }
  }, 100);
  /** @type {any} */ (window).reroute = (/** @type {string} */ v) => {
    via = v;
    if (latest && !latest.__done) {
      latest.close();
      retry(latest);
    }
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
