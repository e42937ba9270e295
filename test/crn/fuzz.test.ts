/**
 * A few thousand fuzzed requests through a real server (scripts/crn-fuzz.ts
 * runs ≥ 100,000): no answer may be a 500 or a dropped connection, the server
 * keeps answering afterwards and another owner's VM is untouched.
 */
import { expect, it } from 'vitest';
import { fuzzFreshCrn } from './fuzz-harness.js';

it('3,000 fuzzed multipart/JSON/auth/path requests: each answered, none a 500, the server and other VMs unharmed', { timeout: 90_000 }, async () => {
  const { stats, alive, victim } = await fuzzFreshCrn(3000, 0x5e7c1);
  expect(stats.cases).toBe(3000);
  expect(stats.bad).toEqual([]);
  // Every class of refusal was exercised, not only one early exit.
  for (const s of ['400', '401', '404']) expect(stats.byStatus[s] ?? 0).toBeGreaterThan(0);
  expect(alive).toBe(true);
  expect(victim.state).toBe('awaiting-secret');
  expect(victim.stopped).toBe(false);
  expect(victim.injected).toEqual([]);
});
