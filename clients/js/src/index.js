// @origin-discovery/client — live media-origin lists, /pick-identical ranking and a
// sub-second reconnect helper. ES module, no dependencies, browsers and Node >= 20.
//
// Module map:
//   rank.js      weighted rendezvous ranking (the contract), `rank()`, `weight()`, `cost()`, `capacity()`
//   discovery.js `OriginDiscovery`: watch WebSocket → current origin list + events
//   failover.js  `connectWithFailover()`: keeps the app's media connection on a live origin
//   backoff.js   exponential back-off with full jitter, injectable timers

export { rank, weight, cost, capacity, loadSteps, score, compareIds, DEFAULT_COUNT, MAX_WEIGHT, LOAD_STEPS, MAX_COST } from './rank.js';
export { OriginDiscovery, watchUrl, DEFAULT_HEARTBEAT_TIMEOUT } from './discovery.js';
export { connectWithFailover, FailoverConnection, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REBALANCE, REBALANCE_HEADROOM } from './failover.js';
export { DEFAULT_BACKOFF, backoffDelay, backoffCeiling, backoffOptions } from './backoff.js';
