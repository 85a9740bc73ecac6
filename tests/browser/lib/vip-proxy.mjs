// The baseline's "Service VIP": one fixed loopback address that forwards every new TCP
// connection to an origin the cluster lists as ready — what a plain Kubernetes Service with
// kube-proxy gives a client that knows only the Service address.
//
// Modelled on kube-proxy (iptables mode):
// - its view of the Service's endpoints comes only from the EndpointSlices (here: the
//   simulator's, which lag pod changes by `--endpointslice-delay`), re-read every
//   `resyncMs` (1 s, kube-proxy's minimum sync period) — it never looks at pods;
// - each new connection goes to a uniformly random endpoint with `conditions.ready` true
//   (falling back to serving+terminating ones only when none is ready, as kube-proxy does);
// - no ready endpoint → the connection is refused (reset at once);
// - an established connection is never moved: when its origin dies it simply breaks.
// The endpoint address is the origin's loopback port (looked up by the pod in `targetRef`),
// standing in for the pod IP the real DNAT rule would use.
//
// `addListener()` gives the same Service another address: pages standing for different
// viewers each get their own, because a browser lets only one WebSocket handshake per
// address be pending at a time (one viewer's attempt hanging on a frozen pod would
// otherwise queue every other page's).

import net from 'node:net';
import { onCleanup } from './harness.mjs';

export class VipProxy {
  /**
   * @param {{sim: import('./harness.mjs').Sim, namespace: string, service: string,
   *          portOf: (pod: string) => number | null, resyncMs?: number}} opts
   */
  constructor({ sim, namespace, service, portOf, resyncMs = 1_000 }) {
    this.sim = sim;
    this.namespace = namespace;
    this.service = service;
    this.portOf = portOf;
    this.resyncMs = resyncMs;
    /** @type {{pod: string, ready: boolean, serving: boolean}[]} */
    this.endpoints = [];
    /** @type {Set<{pod: string, client: net.Socket, upstream: net.Socket}>} */
    this.connections = new Set();
    this.stats = { accepted: 0, refused: 0, syncs: 0, syncErrors: 0 };
    this.stopped = false;
    this.timer = null;
  }

  async start() {
    /** @type {net.Server[]} */
    this.servers = [];
    /** every listening port */
    /** @type {Set<number>} */
    this.ports = new Set();
    this.url = await this.addListener();
    this.port = this.servers[0].address().port;
    onCleanup(() => this.stop());
    await this.sync();
    this.schedule();
    return this;
  }

  /** Another address for the same Service; returns its `ws://…/?client=baseline` URL. */
  async addListener() {
    const server = net.createServer((client) => this.onConnection(client));
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    this.servers.push(server);
    const port = server.address().port;
    this.ports.add(port);
    return `ws://127.0.0.1:${port}/?client=baseline`;
  }

  schedule() {
    if (this.stopped) return;
    this.timer = setTimeout(async () => {
      await this.sync();
      this.schedule();
    }, this.resyncMs);
  }

  async sync() {
    try {
      const list = await this.sim.listEndpointSlices(this.namespace);
      /** @type {{pod: string, ready: boolean, serving: boolean}[]} */
      const eps = [];
      for (const slice of list.items ?? []) {
        if (slice.metadata?.labels?.['kubernetes.io/service-name'] !== this.service) continue;
        for (const ep of slice.endpoints ?? []) {
          const pod = ep.targetRef?.kind === 'Pod' ? ep.targetRef.name : null;
          if (!pod) continue;
          // KEP-1672: a nil condition means "ready"/"serving".
          const ready = ep.conditions?.ready !== false;
          const serving = ep.conditions?.serving ?? ready;
          eps.push({ pod, ready, serving });
        }
      }
      this.endpoints = eps;
      this.stats.syncs++;
    } catch {
      this.stats.syncErrors++; // keep the last view, as kube-proxy does
    }
  }

  pick() {
    let candidates = this.endpoints.filter((e) => e.ready);
    if (candidates.length === 0) candidates = this.endpoints.filter((e) => e.serving);
    if (candidates.length === 0) return null;
    return candidates[Math.floor(Math.random() * candidates.length)];
  }

  /** @param {net.Socket} client */
  onConnection(client) {
    const ep = this.pick();
    // The DNAT target: the pod's address. A pod whose process is gone refuses, like a dead pod IP.
    const port = ep ? this.portOf(ep.pod) : null;
    if (!ep) {
      this.stats.refused++;
      client.resetAndDestroy?.() ?? client.destroy();
      return;
    }
    this.stats.accepted++;
    const upstream = net.connect({ host: '127.0.0.1', port: port ?? 1 });
    const rec = { pod: ep.pod, client, upstream };
    this.connections.add(rec);
    const done = () => {
      if (!this.connections.delete(rec)) return;
      client.destroy();
      upstream.destroy();
    };
    client.on('error', done);
    upstream.on('error', done);
    client.on('close', done);
    upstream.on('close', done);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Pods that currently carry a proxied connection. */
  activeBackends() {
    return [...this.connections].map((c) => c.pod);
  }

  async stop() {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    for (const c of this.connections) {
      c.client.destroy();
      c.upstream.destroy();
    }
    this.connections.clear();
    await Promise.all((this.servers ?? []).map((srv) => new Promise((resolve) => srv.close(() => resolve()))));
  }
}
