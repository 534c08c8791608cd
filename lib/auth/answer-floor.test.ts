import assert from 'node:assert/strict';
import { test } from 'node:test';
import { waitForFloor } from './answer-floor';

/** Busy for `ms` without yielding: the event loop's cached clock falls behind, as under load. */
function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

test('an answer never comes before its floor, even when the event loop was busy', async () => {
  for (let i = 0; i < 30; i++) {
    const started = performance.now();
    busy(0.3 + (i % 10) / 10);
    await waitForFloor(started, 15);
    const took = performance.now() - started;
    assert.ok(took >= 15, `round ${i}: answered after ${took} ms`);
  }
});

test('a floor already passed costs nothing more', async () => {
  const started = performance.now() - 2000;
  const before = performance.now();
  await waitForFloor(started, 1000);
  assert.ok(performance.now() - before < 100);
});
