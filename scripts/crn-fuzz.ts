#!/usr/bin/env -S node --import tsx
/**
 * CRN request fuzzing (not part of `npm test`; test/crn/fuzz.test.ts runs 3,000):
 * N fuzzed multipart / JSON / auth-header / path requests through a real
 * server over raw TCP. Fails (exit 1) on any 500, any dropped connection that
 * owed an answer, a server that stops answering, or another owner's VM touched.
 *
 *   node --import tsx scripts/crn-fuzz.ts [cases=100000] [seed=1]
 */
import { fuzzFreshCrn } from '../test/crn/fuzz-harness.js';

const cases = Number(process.argv[2] ?? 100_000);
const seed = Number(process.argv[3] ?? 1);
const t0 = performance.now();
const { stats, alive, victim } = await fuzzFreshCrn(cases, seed);
const s = (performance.now() - t0) / 1000;
process.stdout.write(`${stats.cases} cases in ${s.toFixed(1)} s; statuses ${JSON.stringify(stats.byStatus)}\n`);
for (const b of stats.bad) process.stdout.write(`BAD ${b.status} ${b.kind}: ${b.request}\n`);
const untouched = victim.state === 'awaiting-secret' && !victim.stopped && victim.injected.length === 0;
process.stdout.write(`server answers afterwards: ${alive}; other owner's VM untouched: ${untouched}\n`);
process.exit(stats.bad.length > 0 || !alive || !untouched ? 1 : 0);
