// Stand-in controller for working on the dashboard and the client without Kubernetes or the
// Rust build: serves the dashboard exactly as the controller will (`/` → dashboard/,
// `/client/*` → src/*), answers `GET /v1/pools`, and speaks the watch WebSocket protocol for
// one simulated pool `demo/origin` whose origins drain, die and get replaced every few
// seconds; every third origin has weight 2, and loads drift (reported in steps of 0.05, at
// most once per origin per 5 s, as the controller publishes them). It is a development aid,
// not a reference for the server.
//
//   npm run demo            # http://127.0.0.1:8099/
//   PORT=9000 CHAOS_MS=3000 HEARTBEAT_MS=5000 npm run demo

import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PORT = Number(process.env.PORT ?? 8099);
const CHAOS_MS = Number(process.env.CHAOS_MS ?? 6000);
const HEARTBEAT_MS = Number(process.env.HEARTBEAT_MS ?? 5000);
const POOL = 'demo/origin';
const EPOCH = Math.random().toString(36).slice(2, 10);
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json' };

let revision = 1;
let serial = 0;
/** @type {Map<string, any>} */
const origins = new Map();
/** @type {any[]} recent deltas for resume */
const log = [];
const zones = ['zone-a', 'zone-b', 'zone-c'];

function newOrigin() {
  const n = serial++;
  const id = `origin-${Math.random().toString(36).slice(2, 7)}-${n}`;
  return {
    id,
    url: `wss://${id}.origins.example.com:5443/LiveApp/websocket`,
    ip: `10.1.0.${10 + (n % 240)}`,
    port: 5080,
    node: `node-${n % 3}`,
    zone: zones[n % 3],
    state: 'ready',
    since: new Date().toISOString(),
    ...(n % 3 === 2 ? { weight: 2 } : {}),
  };
}
for (let i = 0; i < 4; i++) {
  const o = newOrigin();
  origins.set(o.id, o);
}

/** @type {Set<import('ws').WebSocket>} */
const subscribers = new Set();

/**
 * @param {any[]} upsert
 * @param {string[]} remove
 */
function publish(upsert, remove) {
  for (const o of upsert) origins.set(o.id, o);
  for (const id of remove) origins.delete(id);
  revision += 1;
  const delta = { type: 'delta', pool: POOL, epoch: EPOCH, revision, upsert, remove };
  log.push(delta);
  if (log.length > 100) log.shift();
  const frame = JSON.stringify(delta);
  for (const ws of subscribers) ws.send(frame);
}

// Chaos: drain one origin, remove it shortly after, then start a replacement.
setInterval(() => {
  const ready = [...origins.values()].filter((o) => o.state === 'ready');
  if (ready.length < 2) return;
  const victim = ready[Math.floor(Math.random() * ready.length)];
  if (Math.random() < 0.5) {
    publish([{ ...victim, state: 'draining', since: new Date().toISOString() }], []);
    setTimeout(() => publish([], [victim.id]), 1500);
  } else {
    publish([], [victim.id]); // a crash: gone without draining
  }
  setTimeout(() => publish([newOrigin()], []), 2500);
}, CHAOS_MS).unref();

// Load drift: every 5 s one ready origin reports a new load (a step of ±0.05…0.15).
setInterval(() => {
  const ready = [...origins.values()].filter((o) => o.state === 'ready');
  if (ready.length === 0) return;
  const o = ready[Math.floor(Math.random() * ready.length)];
  const steps = Math.round((o.load ?? 0.3) * 20) + (Math.random() < 0.5 ? -1 : 1) * (1 + Math.floor(Math.random() * 3));
  publish([{ ...o, load: Math.min(20, Math.max(0, steps)) / 20 }], []);
}, 5_000).unref();

function snapshot() {
  return { type: 'snapshot', pool: POOL, epoch: EPOCH, revision, stale: false, origins: [...origins.values()] };
}

const http = createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (url.pathname === '/v1/pools') {
    const list = [...origins.values()];
    const body = { pools: [{ pool: POOL, revision, ready: list.filter((o) => o.state === 'ready').length, draining: list.filter((o) => o.state === 'draining').length }] };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    return;
  }
  let file;
  if (url.pathname === '/') file = join(ROOT, 'dashboard', 'index.html');
  else if (url.pathname.startsWith('/client/')) file = join(ROOT, 'src', normalize(url.pathname.slice('/client/'.length)));
  else file = join(ROOT, 'dashboard', normalize(url.pathname));
  if (!file.startsWith(ROOT) || file.includes('..')) {
    res.writeHead(404).end();
    return;
  }
  try {
    const data = await readFile(file);
    res.writeHead(200, { 'content-type': TYPES[/** @type {keyof TYPES} */ (extname(file))] ?? 'application/octet-stream' }).end(data);
  } catch {
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'not_found', message: url.pathname } }));
  }
});

const wss = new WebSocketServer({ noServer: true });
http.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (url.pathname !== `/v1/pools/${POOL}/watch`) {
    socket.end('HTTP/1.1 404 Not Found\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    const epoch = url.searchParams.get('epoch');
    const from = Number(url.searchParams.get('revision'));
    const missed = log.filter((d) => d.revision > from);
    if (epoch === EPOCH && from <= revision && (from === revision || missed[0]?.revision === from + 1)) {
      for (const d of missed) ws.send(JSON.stringify(d));
    } else {
      ws.send(JSON.stringify(snapshot()));
    }
    subscribers.add(ws);
    const hb = setInterval(() => ws.send(JSON.stringify({ type: 'heartbeat', revision })), HEARTBEAT_MS);
    ws.on('message', (data) => {
      const msg = (() => {
        try {
          return JSON.parse(String(data));
        } catch {
          return null;
        }
      })();
      if (msg?.type === 'ping') ws.send(JSON.stringify({ type: 'pong', revision }));
      else ws.close(1008, 'unexpected message');
    });
    ws.on('close', () => {
      clearInterval(hb);
      subscribers.delete(ws);
    });
  });
});

http.listen(PORT, '127.0.0.1', () => {
  const addr = /** @type {import('node:net').AddressInfo} */ (http.address());
  console.log(`demo controller: http://127.0.0.1:${addr.port}/  (pool ${POOL}, chaos every ${CHAOS_MS} ms)`);
});
