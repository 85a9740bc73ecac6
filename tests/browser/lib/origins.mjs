// Real origin processes (lib/echo-server.mjs), each registered in the simulator as a pod of
// the `demo/echo` pool whose `origin-discovery.io/url` annotation points at it. The pod's IP
// (the simulator's `sim.origin-discovery.io/pod-ip` annotation) is 127.0.0.1 and its
// container port the process's own port, so the EndpointSlice names the real listener and
// the controller's active probes reach it.
//
// Spare processes are started ahead of time, so that registering a replacement at a measured
// moment costs one REST call, not a Node start-up competing for the two cores.

import { rmSync } from 'node:fs';
import path from 'node:path';
import { ARTIFACTS, HERE, spawnChild, stopChild, onCleanup } from './harness.mjs';

export const NAMESPACE = 'demo';
export const SERVICE = 'echo';
export const POOL = `${NAMESPACE}/${SERVICE}`;

/**
 * The pool's Service: opted in by label, selector app=echo, port `ws` 5080 → targetPort `ws`.
 * @param {{probe?: 'tcp' | 'http'}} [opts] `probe`: the `origin-discovery.io/probe` annotation
 */
export function echoService({ probe } = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: SERVICE,
      namespace: NAMESPACE,
      labels: { app: 'echo', 'origin-discovery.io/enabled': 'true' },
      annotations: probe ? { 'origin-discovery.io/probe': probe } : {},
    },
    spec: {
      selector: { app: 'echo' },
      ports: [{ name: 'ws', port: 5080, targetPort: 'ws', protocol: 'TCP' }],
    },
  };
}

/**
 * @param {string} name
 * @param {number} port the echo process's loopback port
 * @param {string | null} [node] the simulated node to run on (else the scheduler picks)
 */
export function echoPod(name, port, node = null) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: NAMESPACE,
      labels: { app: 'echo' },
      annotations: { 'origin-discovery.io/url': `ws://127.0.0.1:${port}/`, 'sim.origin-discovery.io/pod-ip': '127.0.0.1' },
    },
    spec: {
      ...(node ? { nodeName: node } : {}),
      containers: [
        {
          name: 'echo',
          image: 'origin-discovery/echo:test',
          ports: [{ name: 'ws', containerPort: port, protocol: 'TCP' }],
        },
      ],
      terminationGracePeriodSeconds: 30,
    },
  };
}

/**
 * @typedef {object} EchoOrigin
 * @property {string} name pod name (also the name the process answers with)
 * @property {number} port
 * @property {ReturnType<typeof spawnChild>} proc
 * @property {Record<string, number>} open open connections by client tag, as the process reports
 * @property {boolean} registered a pod exists for it
 * @property {boolean} killed
 * @property {boolean} frozen stopped with SIGSTOP
 * @property {string | null} node the simulated node of its pod
 */

export class EchoFleet {
  /**
   * @param {import('./harness.mjs').Sim} sim
   * @param {string} [logName] the origins' log in test-artifacts/
   */
  constructor(sim, logName = 'echo-origins.log') {
    this.sim = sim;
    this.seq = 0;
    /** @type {EchoOrigin[]} */ this.spares = [];
    /** @type {Map<string, EchoOrigin>} */ this.byName = new Map();
    /** session messages the origins received: {origin, client, page, conn, session} */
    /** @type {any[]} */ this.sessions = [];
    this.log = path.join(ARTIFACTS, logName);
    rmSync(this.log, { force: true });
    onCleanup(() => this.stopAll());
  }

  /** Starts one echo process (not registered yet) and waits until it listens. */
  async spawn() {
    const name = `echo-${++this.seq}`;
    const proc = spawnChild(process.execPath, [path.join(HERE, 'lib', 'echo-server.mjs'), name], { name, log: this.log });
    /** @type {EchoOrigin} */
    const o = { name, port: 0, proc, open: {}, registered: false, killed: false, frozen: false, node: null };
    this.byName.set(name, o);
    proc.out.listeners.add((line) => {
      try {
        const ev = JSON.parse(line);
        if (ev.open) o.open = ev.open;
        if (ev.event === 'session') this.sessions.push({ origin: name, client: ev.client, page: ev.page, conn: ev.conn, session: ev.session });
      } catch {
        /* not ours */
      }
    });
    const early = proc.exited.then(({ code, signal }) => {
      throw new Error(`echo server ${name} exited early (code ${code}, signal ${signal})`);
    });
    early.catch(() => {});
    o.port = await Promise.race([
      proc.out.wait((l) => (l.startsWith('{"event":"listening"') ? JSON.parse(l).port : null), 15_000, `${name} to listen`),
      early,
    ]);
    return o;
  }

  /** Keeps `n` spare processes ready. */
  async ensureSpares(n) {
    const missing = Math.max(0, n - this.spares.length);
    const started = await Promise.all(Array.from({ length: missing }, () => this.spawn()));
    this.spares.push(...started);
  }

  /**
   * Registers a spare (or a new process) as a pod; returns it.
   * @param {string | null} [node] the simulated node for its pod
   */
  async add(node = null) {
    const o = this.spares.shift() ?? (await this.spawn());
    await this.sim.createPod(NAMESPACE, echoPod(o.name, o.port, node));
    o.registered = true;
    o.node = node;
    return o;
  }

  /** SIGSTOPs an origin's process (a frozen origin: sockets open, port accepting, no answer). */
  freeze(name) {
    const o = this.byName.get(name);
    if (!o) throw new Error(`unknown origin ${name}`);
    o.frozen = true;
    o.proc.child.kill('SIGSTOP');
    return o;
  }

  /** SIGKILLs an origin's process (a crashed origin), synchronously. */
  kill(name) {
    const o = this.byName.get(name);
    if (!o) throw new Error(`unknown origin ${name}`);
    o.killed = true;
    o.proc.child.kill('SIGKILL');
    return o;
  }

  /** Origins whose process still runs (not killed, not frozen) and that are registered as pods. */
  alive() {
    return [...this.byName.values()].filter((o) => o.registered && !o.killed && !o.frozen);
  }

  /**
   * Origins the controller at `api` lists `ready` in the pool and whose process runs.
   * @param {string} api the controller's public base URL
   * @returns {Promise<Set<string>>}
   */
  async liveReady(api) {
    const res = await fetch(`${api}/v1/pools/${POOL}`, { signal: AbortSignal.timeout(5_000) });
    if (!res.ok) throw new Error(`GET /v1/pools/${POOL}: HTTP ${res.status}`);
    const snap = await res.json();
    const alive = new Set(this.alive().map((o) => o.name));
    return new Set(snap.origins.filter((o) => o.state === 'ready' && alive.has(o.id)).map((o) => o.id));
  }

  /** The origin's port, also after it was killed (connecting then is refused, like a dead pod IP). */
  portOf(name) {
    return this.byName.get(name)?.port ?? null;
  }

  async stopAll() {
    await Promise.all([...this.byName.values()].map((o) => stopChild(o.proc, 'SIGKILL', 2_000)));
  }
}
