import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoffCeiling, backoffDelay, backoffOptions, DEFAULT_BACKOFF } from '../src/index.js';

test('defaults are GBB-style: first retry at once, then 1 s doubling to a 30 s cap, never give up', () => {
  assert.deepEqual({ ...DEFAULT_BACKOFF }, { immediate: 1, initial: 1_000, max: 30_000, factor: 2, maxRetries: Infinity });
  assert.ok(Object.isFrozen(DEFAULT_BACKOFF));
});

test('ceiling: 0 for the immediate retries, then doubles per attempt and stops at the cap', () => {
  const o = backoffOptions();
  const ceilings = Array.from({ length: 10 }, (_, i) => backoffCeiling(o, i + 1));
  assert.deepEqual(ceilings, [0, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
  assert.equal(backoffCeiling(o, 5000), 30000, 'no overflow to NaN/Infinity far out');
  assert.deepEqual(
    Array.from({ length: 4 }, (_, i) => backoffCeiling(backoffOptions({ immediate: 0, initial: 250 }), i + 1)),
    [250, 500, 1000, 2000],
    'immediate: 0 starts timed at once',
  );
  assert.deepEqual(
    Array.from({ length: 4 }, (_, i) => backoffCeiling(backoffOptions({ immediate: 2 }), i + 1)),
    [0, 0, 1000, 2000],
  );
  assert.equal(backoffCeiling(backoffOptions({ initial: 0 }), 5000), 0, 'initial 0 is 0, not NaN');
});

test('full jitter: delays cover [0, ceiling) and never exceed it', () => {
  const o = backoffOptions({ immediate: 0, initial: 100, max: 1000 });
  assert.equal(backoffDelay(o, 3, () => 0), 0);
  assert.equal(backoffDelay(o, 3, () => 0.999999), 399);
  assert.equal(backoffDelay(o, 50, () => 0.999999), 999);
  assert.equal(backoffDelay(backoffOptions(), 1, () => 0.999999), 0, 'the first default retry is at once');
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
  assert.throws(() => backoffOptions({ immediate: -1 }), RangeError);
  assert.throws(() => backoffOptions({ immediate: 0.5 }), RangeError);
  assert.equal(backoffOptions({ maxRetries: Infinity }).maxRetries, Infinity);
});
