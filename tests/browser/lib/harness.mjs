// Shared plumbing for the browser end-to-end tests: child processes (the dev binary, echo
// origins) that are always stopped, bounded waits, the simulator's Kubernetes REST API, the
// browser, and a tiny static server for the test pages.
//
// Rules kept here: every wait has a deadline and names what it waited for; everything started
// is registered and stopped by `cleanup()` (also on SIGINT/SIGTERM and process exit).

import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** tests/browser */
export const HERE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO = path.resolve(HERE, '..', '..');
export const ARTIFACTS = path.join(REPO, 'test-artifacts');
export const BINARY = process.env.ORIGIN_DISCOVERY_BIN ?? path.join(REPO, 'target', 'debug', 'origin-discovery');
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

mkdirSync(ARTIFACTS, { recursive: true });

// ---------------------------------------------------------------------------------------------
// Cleanup registry

/** @type {Set<() => Promise<void> | void>} */
const cleanups = new Set();
/** @type {Set<import('node:child_process').ChildProcess>} */
const children = new Set();

/** Registers `fn` to run in `cleanup()` (latest first). Returns an unregister function. */
export function onCleanup(fn) {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

/** Runs every registered cleanup, then SIGKILLs any child still alive. Never throws. */
export async function cleanup() {
  for (const fn of [...cleanups].reverse()) {
    cleanups.delete(fn);
    try {
      await withTimeout(Promise.resolve().then(fn), 10_000, 'a cleanup step');
    } catch (e) {
      console.error(`cleanup: ${e.message}`);
    }
  }
  killAllChildren();
}

function killAllChildren() {
  for (const c of children) {
    if (c.exitCode == null && c.signalCode == null) {
      try {
        c.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
}

process.on('exit', killAllChildren);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    killAllChildren();
    process.exit(130);
  });
}

// ---------------------------------------------------------------------------------------------
// Bounded waiting

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Rejects with a clear message when `promise` does not settle within `ms`.
 * @template T
 * @param {Promise<T>} promise
 * @param {number} ms
 * @param {string} what
 * @returns {Promise<T>}
 */
export function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

/**
 * Polls `fn` until it returns a truthy value (returned) or `timeout` ms pass (throws, with the
 * last value or error in the message). For state that has no event to wait on.
 * @template T
 * @param {() => T | Promise<T>} fn
 * @param {{timeout: number, interval?: number, what: string}} opts
 * @returns {Promise<T>}
 */
export async function waitFor(fn, { timeout, interval = 25, what }) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${detail})`);
    }
    await sleep(interval);
  }
}

/** A line-oriented reader of a child's stdout with "wait for a line matching" support. */
class LineWaiter {
  constructor(stream, tee) {
    /** @type {string[]} */ this.lines = [];
    /** @type {Set<{test: (l: string) => any, resolve: (v: any) => void}>} */ this.waiters = new Set();
    /** @type {Set<(l: string) => void>} */ this.listeners = new Set();
    this.ended = false;
    const rl = createInterface({ input: stream });
    rl.on('line', (line) => {
      tee?.write(`${line}\n`);
      this.lines.push(line);
      if (this.lines.length > 2000) this.lines.splice(0, 1000);
      for (const l of this.listeners) l(line);
      for (const w of [...this.waiters]) {
        const v = w.test(line);
        if (v) {
          this.waiters.delete(w);
          w.resolve(v);
        }
      }
    });
    rl.on('close', () => {
      this.ended = true;
    });
  }

  /**
   * Resolves with `test(line)` for the first line (already seen or future) where it is truthy.
   * @param {(line: string) => any} test
   * @param {number} timeout
   * @param {string} what
   */
  wait(test, timeout, what) {
    for (const l of this.lines) {
      const v = test(l);
      if (v) return Promise.resolve(v);
    }
    let w;
    const p = new Promise((resolve) => {
      w = { test, resolve };
      this.waiters.add(w);
    });
    return withTimeout(p, timeout, what).finally(() => this.waiters.delete(w));
  }
}

/**
 * Spawns a child that is killed by `cleanup()` at the latest.
 * @param {string} cmd
 * @param {string[]} args
 * @param {{name: string, log?: string}} opts
 */
export function spawnChild(cmd, args, { name, log }) {
  const logStream = log ? createWriteStream(log, { flags: 'a' }) : null;
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env } });
  children.add(child);
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
    // A spawn failure (e.g. ENOENT) may never emit 'exit'.
    child.once('error', (e) => {
      console.error(`${name}: ${e.message}`);
      if (child.pid == null) {
        children.delete(child);
        resolve({ code: null, signal: null, error: e.message });
      }
    });
  });
  child.stdin.on('error', () => {});
  const out = new LineWaiter(child.stdout, logStream);
  child.stderr.on('data', (d) => logStream?.write(d));
  exited.then(() => logStream?.end());
  return { child, out, exited, name };
}

/**
 * Stops a child: `signal` first, SIGKILL after `graceMs`. Resolves when it has exited.
 * @param {{child: import('node:child_process').ChildProcess, exited: Promise<any>}} c
 */
export async function stopChild(c, signal = 'SIGTERM', graceMs = 5_000) {
  if (c.child.exitCode != null || c.child.signalCode != null) return;
  try {
    c.child.kill(signal);
  } catch {
    /* gone */
  }
  const timer = setTimeout(() => {
    try {
      c.child.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }, graceMs);
  await c.exited;
  clearTimeout(timer);
}

// ---------------------------------------------------------------------------------------------
// origin-discovery dev

/**
 * Starts `origin-discovery dev` on ephemeral loopback ports and waits until its API answers.
 * @param {{extraArgs?: string[], logName: string}} opts
 * @returns {Promise<{api: string, admin: string, sim: string, kubeconfig: string, stop: () => Promise<void>}>}
 */
export async function startDev({ extraArgs = [], logName }) {
  if (!existsSync(BINARY)) {
    throw new Error(`${BINARY} does not exist: run \`cargo build\` (scripts/test-browser.sh does) or set ORIGIN_DISCOVERY_BIN`);
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'od-browser-'));
  const kubeconfig = path.join(dir, 'kubeconfig');
  const log = path.join(ARTIFACTS, logName);
  rmSync(log, { force: true });
  const args = [
    'dev',
    '--listen', '127.0.0.1:0',
    '--admin-listen', '127.0.0.1:0',
    '--sim-listen', '127.0.0.1:0',
    '--kubeconfig-out', kubeconfig,
    '--cors-allow-origin', '*',
    '--heartbeat-interval', '1s',
    ...extraArgs,
  ];
  const c = spawnChild(BINARY, args, { name: 'origin-discovery dev', log });
  const stop = async () => {
    await stopChild(c, 'SIGTERM', 5_000);
    rmSync(dir, { recursive: true, force: true });
  };
  onCleanup(stop);
  const url = (label) => (l) => l.match(new RegExp(`^\\s*${label}:\\s+(http://\\S+)`))?.[1];
  const early = c.exited.then(({ code, signal }) => {
    throw new Error(`origin-discovery dev exited early (code ${code}, signal ${signal}); see ${log}`);
  });
  const [api, admin, sim] = await Promise.race([
    Promise.all([
      c.out.wait(url('API'), 60_000, 'the "API:" line of origin-discovery dev'),
      c.out.wait(url('admin'), 60_000, 'the "admin:" line of origin-discovery dev'),
      c.out.wait(url('simulator'), 60_000, 'the "simulator:" line of origin-discovery dev'),
    ]),
    early,
  ]);
  early.catch(() => {}); // exits later (our own stop) are not errors
  await waitFor(async () => (await fetch(`${admin}/readyz`)).ok, { timeout: 30_000, what: `${admin}/readyz` });
  return { api, admin, sim, kubeconfig, stop, log };
}

// ---------------------------------------------------------------------------------------------
// The simulator's Kubernetes REST API (plain fetch, as kubectl would)

export class Sim {
  /** @param {string} base e.g. http://127.0.0.1:1234 */
  constructor(base) {
    this.base = base.replace(/\/+$/, '');
  }

  async request(method, p, body) {
    const res = await fetch(`${this.base}${p}`, {
      method,
      headers: body ? { 'content-type': 'application/json', accept: 'application/json' } : { accept: 'application/json' },
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${p}: HTTP ${res.status} ${text.slice(0, 300)}`);
    return text ? JSON.parse(text) : null;
  }

  createService(ns, svc) {
    return this.request('POST', `/api/v1/namespaces/${ns}/services`, svc);
  }

  createPod(ns, pod) {
    return this.request('POST', `/api/v1/namespaces/${ns}/pods`, pod);
  }

  getPod(ns, name) {
    return this.request('GET', `/api/v1/namespaces/${ns}/pods/${name}`);
  }

  deletePod(ns, name, gracePeriodSeconds) {
    return this.request('DELETE', `/api/v1/namespaces/${ns}/pods/${name}`, {
      kind: 'DeleteOptions',
      apiVersion: 'v1',
      gracePeriodSeconds,
    });
  }

  /** Sim-only: the pod's containers terminate and Ready turns False (what a kubelet reports). */
  crashPod(ns, name) {
    return this.request('POST', `/sim/v1/namespaces/${ns}/pods/${name}/crash`);
  }

  /** Sim-only: the node's kubelet dies — its Lease is no longer renewed (NotReady after the grace). */
  killNode(name) {
    return this.request('POST', `/sim/v1/nodes/${name}/kill`);
  }

  /** Sim-only: the node's kubelet is back. */
  reviveNode(name) {
    return this.request('POST', `/sim/v1/nodes/${name}/revive`);
  }

  listEndpointSlices(ns) {
    return this.request('GET', `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`);
  }
}

// ---------------------------------------------------------------------------------------------
// Static server for the test pages (loopback, ephemeral port)

/**
 * Serves files from `dir` at `http://127.0.0.1:<port>/`.
 * @param {string} dir
 */
export async function serveStatic(dir) {
  const types = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript' };
  const server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const file = path.join(dir, path.normalize(u.pathname).replace(/^(\.\.[/\\])+/, ''));
    if (!file.startsWith(dir)) {
      res.writeHead(403).end();
      return;
    }
    try {
      const body = readFileSync(file);
      res.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
      res.end(body);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const close = () =>
    new Promise((resolve) => {
      server.closeAllConnections?.();
      server.close(() => resolve());
    });
  onCleanup(close);
  return { url: `http://127.0.0.1:${server.address().port}`, close };
}

// ---------------------------------------------------------------------------------------------
// Browser

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // Several pages run side by side and are measured with timers: never throttle them.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];

/**
 * Launches Debian's chromium (never a downloaded browser) with a fresh user-data-dir.
 * @returns {Promise<import('playwright-core').BrowserContext>}
 */
export async function launchBrowser() {
  const { chromium } = await import('playwright-core');
  const userDataDir = mkdtempSync(path.join(tmpdir(), 'od-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 900 },
    timeout: 60_000,
  });
  onCleanup(async () => {
    await withTimeout(context.close(), 10_000, 'the browser to close').catch((e) => console.error(e.message));
    rmSync(userDataDir, { recursive: true, force: true });
  });
  return context;
}

/** Percentile (nearest-rank) of a numeric array. */
export function percentile(values, p) {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * s.length);
  return s[Math.min(s.length - 1, Math.max(0, rank - 1))];
}
