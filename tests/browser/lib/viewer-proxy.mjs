// The viewer's network: a loopback proxy between a page and everything it talks to —
// discovery and media alike — that can go down without closing anything.
//
//   ws://127.0.0.1:<proxy>/up/<port>/<path>  →  ws://127.0.0.1:<port>/<path>
//
// (plain HTTP too; only the request line of a connection's first request is rewritten, which
// is all a WebSocket upgrade needs). Only the ports `allow(port)` accepts are reachable.
//
// `outage(true)` models a network that stops delivering: from then on no byte is forwarded in
// either direction and no connection is closed — bytes the page or the upstream send are held,
// a socket either side closes stays open on the other, and new connections are accepted (the
// page's TCP handshake is answered by its own machine's stack) but not connected upstream.
// `outage(false)` is the network coming back: held connections are opened, held bytes
// delivered in order, held closes passed on. This is the optimistic case of TCP across an
// outage (every segment retransmitted the moment the path is back, no RTO back-off); a real
// partition can only be slower to resume an old connection, which favours a client that
// waits on it over one that reconnects.

//
// The proxies run in a child process of their own (`ViewerNet`, `node viewer-proxy.mjs
// serve`), so that what they forward never waits for the test process's event loop (busy
// driving 40 pages); the test only sends it commands.

import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ARTIFACTS, onCleanup, spawnChild, stopChild, withTimeout } from './harness.mjs';

/** Most bytes held per connection and direction while down (then the connection is cut). */
const MAX_HELD = 4 * 1024 * 1024;

export class ViewerProxy {
  /** @param {{allow: (port: number) => boolean}} opts */
  constructor({ allow }) {
    this.allow = allow;
    this.down = false;
    /** @type {Set<any>} */ this.links = new Set();
    this.stats = { connections: 0, refused: 0, heldConnects: 0 };
  }

  async start() {
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (c) => this.onConnection(c));
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', resolve);
    });
    this.port = this.server.address().port;
    /** `ws://127.0.0.1:<proxy>`: the page's `via` */
    this.ws = `ws://127.0.0.1:${this.port}`;
    onCleanup(() => this.stop());
    return this;
  }

  /** `http://127.0.0.1:<proxy>/up/<port>`: a base URL for the upstream on `port`. */
  base(port) {
    return `http://127.0.0.1:${this.port}/up/${port}`;
  }

  /** Takes the network down (`true`) or brings it back (`false`). */
  outage(down) {
    this.down = down;
    if (!down) for (const l of [...this.links]) this.pump(l);
  }

  /** @param {net.Socket} client */
  onConnection(client) {
    this.stats.connections++;
    const link = {
      client,
      upstream: /** @type {net.Socket | null} */ (null),
      port: 0,
      head: Buffer.alloc(0),
      toUp: /** @type {Buffer[]} */ ([]),
      toDown: /** @type {Buffer[]} */ ([]),
      heldUp: 0,
      heldDown: 0,
      clientEnded: false,
      upEnded: false,
      upConnected: false,
      done: false,
    };
    this.links.add(link);
    client.on('data', (d) => {
      if (!link.port) {
        link.head = Buffer.concat([link.head, d]);
        const end = link.head.indexOf('\r\n\r\n');
        if (end < 0) {
          if (link.head.length > 64 * 1024) this.kill(link);
          return;
        }
        const text = link.head.toString('latin1');
        const eol = text.indexOf('\r\n');
        const m = text.slice(0, eol).match(/^(\S+) \/up\/(\d+)(\/\S*)? (HTTP\/1\.[01])$/);
        const port = m ? Number(m[2]) : 0;
        if (!m || !this.allow(port)) {
          this.stats.refused++;
          client.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
          this.links.delete(link);
          return;
        }
        link.port = port;
        const line = `${m[1]} ${m[3] ?? '/'} ${m[4]}`;
        link.toUp.push(Buffer.from(line, 'latin1'), link.head.subarray(eol));
        link.heldUp += link.head.length;
        link.head = Buffer.alloc(0);
      } else {
        link.toUp.push(d);
        link.heldUp += d.length;
      }
      if (link.heldUp > MAX_HELD) this.kill(link);
      else this.pump(link);
    });
    client.on('end', () => {
      link.clientEnded = true;
      this.pump(link);
    });
    client.on('error', () => {
      link.clientEnded = true;
      this.pump(link);
    });
  }

  /** Moves whatever may move now (nothing while down). */
  pump(link) {
    if (this.down || link.done) return;
    if (link.port && !link.upstream) {
      if (link.clientEnded && link.toUp.length === 0) return this.finish(link);
      const up = net.connect({ host: '127.0.0.1', port: link.port, allowHalfOpen: true, noDelay: true });
      link.upstream = up;
      up.on('connect', () => {
        link.upConnected = true;
        this.pump(link);
      });
      up.on('data', (d) => {
        link.toDown.push(d);
        link.heldDown += d.length;
        if (link.heldDown > MAX_HELD) this.kill(link);
        else this.pump(link);
      });
      up.on('end', () => {
        link.upEnded = true;
        this.pump(link);
      });
      up.on('error', () => {
        link.upEnded = true;
        link.upConnected = true; // nothing more will be written to it
        this.pump(link);
      });
    }
    if (link.upstream && link.upConnected && !link.upstream.destroyed) {
      for (const b of link.toUp) link.upstream.write(b);
    }
    if (link.upstream && link.upConnected) {
      link.toUp = [];
      link.heldUp = 0;
      if (link.clientEnded) link.upstream.end();
    }
    if (!link.client.destroyed) for (const b of link.toDown) link.client.write(b);
    link.toDown = [];
    link.heldDown = 0;
    if (link.upEnded) link.client.end();
    if ((link.upEnded || !link.port) && link.clientEnded) this.finish(link);
  }

  finish(link) {
    if (link.done) return;
    link.done = true;
    this.links.delete(link);
    link.client.destroy();
    link.upstream?.destroy();
  }

  kill(link) {
    link.done = true;
    this.links.delete(link);
    link.client.resetAndDestroy?.() ?? link.client.destroy();
    link.upstream?.destroy();
  }

  async stop() {
    for (const l of [...this.links]) this.kill(l);
    await new Promise((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}

/**
 * Viewer proxies in a child process. `proxy()` starts one there; the handle has `ws` and
 * `base(port)` like a ViewerProxy, `outage(down)` and `links()` as requests to the child.
 */
export class ViewerNet {
  async start() {
    this.seq = 0;
    /** @type {Map<number, (v: any) => void>} */ this.pending = new Map();
    this.proc = spawnChild(process.execPath, [fileURLToPath(import.meta.url), 'serve'], {
      name: 'viewer-net',
      log: path.join(ARTIFACTS, 'viewer-net.log'),
    });
    onCleanup(() => stopChild(this.proc, 'SIGKILL', 2_000));
    this.proc.out.listeners.add((line) => {
      try {
        const m = JSON.parse(line);
        this.pending.get(m.seq)?.(m);
        this.pending.delete(m.seq);
      } catch {
        /* not ours */
      }
    });
    return this;
  }

  /** @param {any} msg */
  request(msg) {
    const seq = ++this.seq;
    const reply = new Promise((resolve) => this.pending.set(seq, resolve));
    this.proc.child.stdin.write(`${JSON.stringify({ ...msg, seq })}\n`);
    return withTimeout(reply, 10_000, `viewer-net ${msg.op}`);
  }

  /** Ports the proxies may forward to (all on 127.0.0.1). @param {Iterable<number>} ports */
  allow(ports) {
    return this.request({ op: 'allow', ports: [...ports] });
  }

  /** Takes the proxies `ids` down (`true`) or brings them back, in one command. */
  outage(ids, down) {
    return this.request({ op: 'outage', ids, down });
  }

  /** Open connections per proxy id. @returns {Promise<Record<string, number>>} */
  async links() {
    return (await this.request({ op: 'links' })).links;
  }

  async proxy() {
    const { id, port } = await this.request({ op: 'start' });
    return { id, port, ws: `ws://127.0.0.1:${port}`, base: (/** @type {number} */ p) => `http://127.0.0.1:${port}/up/${p}` };
  }
}

/** The child side: one ViewerProxy per `start`, commands on stdin, replies on stdout. */
async function serve() {
  /** @type {Set<number>} */
  let allowed = new Set();
  /** @type {Map<number, ViewerProxy>} */
  const proxies = new Map();
  const reply = (/** @type {any} */ m) => process.stdout.write(`${JSON.stringify(m)}\n`);
  const rl = createInterface({ input: process.stdin });
  rl.on('line', async (line) => {
    const m = JSON.parse(line);
    if (m.op === 'start') {
      const p = await new ViewerProxy({ allow: (port) => allowed.has(port) }).start();
      const id = proxies.size + 1;
      proxies.set(id, p);
      reply({ seq: m.seq, id, port: p.port });
    } else if (m.op === 'allow') {
      allowed = new Set(m.ports);
      reply({ seq: m.seq });
    } else if (m.op === 'outage') {
      for (const id of m.ids) proxies.get(id)?.outage(m.down);
      reply({ seq: m.seq });
    } else if (m.op === 'links') {
      reply({ seq: m.seq, links: Object.fromEntries([...proxies].map(([id, p]) => [id, p.links.size])) });
    }
  });
  // Gone with the test process.
  rl.on('close', () => process.exit(0));
}

if (process.argv[2] === 'serve' && process.argv[1] === fileURLToPath(import.meta.url)) await serve();
