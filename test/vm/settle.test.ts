import { describe, it, expect } from 'vitest';
import { settlesWithin } from '../../lib/util/async.js';

const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

describe('settlesWithin', () => {
  it('is true for a promise that resolves or rejects in time, false for one that does not; no timer is left behind', async () => {
    const before = timers();
    expect(await settlesWithin(Promise.resolve(1), 10_000)).toBe(true);
    expect(await settlesWithin(Promise.reject(new Error('x')), 10_000)).toBe(true);
    expect(timers()).toBe(before); // the 10 s timers were cleared, not left to run out
    expect(await settlesWithin(new Promise(() => undefined), 5)).toBe(false);
    expect(timers()).toBe(before);
  });
});
