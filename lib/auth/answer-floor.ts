/**
 * Answers that must not tell by their timing whether an address is known (sign-in links, sender
 * codes) all take at least a fixed time.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Resolves once `floorMs` have passed since `started` (a performance.now() reading). Node's timers
 * count from the event loop's cached clock and can fire up to a millisecond early, so what is
 * left after a sleep is slept again.
 */
export async function waitForFloor(started: number, floorMs: number): Promise<void> {
  for (;;) {
    const left = floorMs - (performance.now() - started);
    if (left <= 0) return;
    await sleep(Math.ceil(left));
  }
}
