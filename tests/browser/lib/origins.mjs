// Real origin processes (lib/echo-server.mjs), each registered in the simulator as a pod of
// the `demo/echo` pool whose `origin-discovery.io/url` annotation points at it.
//
// Spare processes are started ahead of time, so that registering a replacement at a measured
// moment costs one REST call, not a Node start-up competing for the two cores.

import { rmSync } from 'node:fs';
import path from 'node:path';
import { ARTIFACTS, HERE, spawnChild, stopChild, onCleanup } from './harness.mjs';

export const NAMESPACE = 'demo';
export const SERVICE = 'echo';
export const POOL = `${NAMESPACE}/${SERVICE}`;

/** The pool's Service: opted in by label, selector app=echo, port `ws` 5080 → targetPort `ws`. */
export function echoService() {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: SERVICE,
      namespace: NAMESPACE,
      labels: { app: 'echo', 'origin-discovery.io/enabled': 'true' },
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
 */
export function echoPod(name, port) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: NAMESPACE,
      labels: { app: 'echo' },
      annotations: { 'origin-discovery.io/url': `ws://127.0.0.1:${port}/` },
    },
    spec: {
      containers: [
        {
          name: 'echo',
          image: 'origin-discovery/echo:test',
          ports: [{ name: 'ws', containerPort: 5080, protocol: 'TCP' }],
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
 */

export class EchoFleet {
  /** @param {import('./harness.mjs').Sim} sim */
  constructor(sim) {
    this.sim = sim;
    this.seq = 0;
    /** @type {EchoOrigin[]} */ this.spares = [];
    /** @type {Map<string, EchoOrigin>} */ this.byName = new Map();
    this.log = path.join(ARTIFACTS, 'echo-origins.log');
    rmSync(this.log, { force: true });
    onCleanup(() => this.stopAll());
  }

  /** Starts one echo process (not registered yet) and waits until it listens. */
  async spawn() {
    const name = `echo-${++this.seq}`;
    const proc = spawnChild(process.execPath, [path.join(HERE, 'lib', 'echo-server.mjs'), name], { name, log: this.log });
    /** @type {EchoOrigin} */
    const o = { name, port: 0, proc, open: {}, registered: false, killed: false };
    this.byName.set(name, o);
    proc.out.listeners.add((line) => {
      try {
        const ev = JSON.parse(line);
        if (ev.open) o.open = ev.open;
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

  /** Registers a spare (or a new process) as a pod; returns it. */
  async add() {
    const o = this.spares.shift() ?? (await this.spawn());
    await this.sim.createPod(NAMESPACE, echoPod(o.name, o.port));
    o.registered = true;
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

  /** Origins whose process still runs and that are registered as pods. */
  alive() {
    return [...this.byName.values()].filter((o) => o.registered && !o.killed);
  }

  /** The origin's port, also after it was killed (connecting then is refused, like a dead pod IP). */
  portOf(name) {
    return this.byName.get(name)?.port ?? null;
  }

  async stopAll() {
    await Promise.all([...this.byName.values()].map((o) => stopChild(o.proc, 'SIGKILL', 2_000)));
  }
}
