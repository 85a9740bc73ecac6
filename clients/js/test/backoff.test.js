import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoffCeiling, backoffDelay, backoffOptions, DEFAULT_BACKOFF } from '../src/index.js';

test('defaults: 250 ms initial, 30 s cap, factor 2', () => {
  assert.deepEqual({ ...DEFAULT_BACKOFF }, { initial: 250, max: 30_000, factor: 2, maxRetries: 10 });
});

test('ceiling doubles per attempt and stops at the cap', () => {
  const o = backoffOptions();
  const ceilings = Array.from({ length: 10 }, (_, i) => backoffCeiling(o, i + 1));
  assert.deepEqual(ceilings, [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  assert.equal(backoffCeiling(o, 1000), 30000);
});

test('full jitter: delays cover [0, ceiling) and never exceed it', () => {
  const o = backoffOptions({ initial: 100, max: 1000 });
  assert.equal(backoffDelay(o, 3, () => 0), 0);
  assert.equal(backoffDelay(o, 3, () => 0.999999), 399);
  assert.equal(backoffDelay(o, 50, () => 0.999999), 999);
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < 2000; i++) {
    const d = backoffDelay(o, 4, Math.random);
    min = Math.min(min, d);
    max = Math.max(max, d);
    assert.ok(d >= 0 && d < 800, String(d));
  }
  // spread, not a fixed value
  assert.ok(min < 100 && max > 700, `${min}..${max}`);
});

test('invalid options are rejected', () => {
  assert.throws(() => backoffOptions({ factor: 0.5 }), RangeError);
  assert.throws(() => backoffOptions({ initial: -1 }), RangeError);
  assert.throws(() => backoffOptions({ maxRetries: -1 }), RangeError);
});
