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

import net from 'node:net';
import { onCleanup } from './harness.mjs';

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
