#!/usr/bin/env -S node --import tsx
/**
 * Exhaustive single-bit-flip check (not part of `npm test`; the suite samples it):
 * for the real Naples and Rome full chains, flips every bit of the signed bytes of
 * every certificate (PDH, PEK, OCA, CEK: [0,0x414); ASK, ARK: preamble+pubexp+modulus)
 * and requires each mutated chain to be rejected, either by a decoder (typed
 * CertificateError) or by verifyChain. Runs on all cores with worker threads.
 *
 *   node --import tsx scripts/certs-bitflip.ts [naples|rome ...]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { CertificateError, SEV_CHAIN_SIZE, decodeFullChain, verifyChain } from '../lib/certs/index.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DERIVED = path.resolve(ROOT, 'test/fixtures/vectors/virtee-derived');

function regions(gen: string, full: Buffer): Array<[string, number, number]> {
  const caSize = full.length - SEV_CHAIN_SIZE === 2 * 832 ? 832 : 1600;
  const n = (caSize - 0x40) / 3;
  const out: Array<[string, number, number]> = ['PDH', 'PEK', 'OCA', 'CEK'].map((c, i) => [c, i * 0x824, i * 0x824 + 0x414]);
  out.push(['ASK', SEV_CHAIN_SIZE, SEV_CHAIN_SIZE + 0x40 + 2 * n]);
  out.push(['ARK', SEV_CHAIN_SIZE + caSize, SEV_CHAIN_SIZE + caSize + 0x40 + 2 * n]);
  void gen;
  return out;
}

interface Job {
  gen: string;
  start: number;
  end: number;
  lo: number;
  name: string;
}
interface Result {
  checked: number;
  byDecoder: number;
  byVerify: number;
  accepted: string[];
  otherErrors: string[];
}

function runJob(full: Buffer, job: Job): Result {
  const r: Result = { checked: 0, byDecoder: 0, byVerify: 0, accepted: [], otherErrors: [] };
  for (let bit = job.start; bit < job.end; bit++) {
    const b = Buffer.from(full);
    const off = job.lo + (bit >> 3);
    b[off]! ^= 1 << (bit & 7);
    r.checked++;
    try {
      const c = decodeFullChain(b);
      if (verifyChain({ sev: c.sev, ca: c.ca }).ok) r.accepted.push(`${job.gen} ${job.name} byte ${off} bit ${bit & 7}`);
      else r.byVerify++;
    } catch (e) {
      if (e instanceof CertificateError) r.byDecoder++;
      else r.otherErrors.push(`${job.gen} ${job.name} byte ${off}: ${(e as Error).message}`);
    }
  }
  return r;
}

/** A worker running this TypeScript file (workers do not inherit the tsx loader). */
function tsWorker(opts: { workerData: Record<string, unknown> }): Worker {
  return new Worker(new URL('./ts-worker.mjs', import.meta.url), { workerData: { ...opts.workerData, __script: import.meta.url } });
}

if (!isMainThread) {
  const { jobs } = workerData as { jobs: Job[] };
  const total: Result = { checked: 0, byDecoder: 0, byVerify: 0, accepted: [], otherErrors: [] };
  const cache = new Map<string, Buffer>();
  for (const job of jobs) {
    if (!cache.has(job.gen)) cache.set(job.gen, fs.readFileSync(path.join(DERIVED, job.gen, 'full_chain.cert')));
    const r = runJob(cache.get(job.gen)!, job);
    total.checked += r.checked;
    total.byDecoder += r.byDecoder;
    total.byVerify += r.byVerify;
    total.accepted.push(...r.accepted);
    total.otherErrors.push(...r.otherErrors);
  }
  parentPort!.postMessage(total);
} else {
  const gens = process.argv.slice(2).length ? process.argv.slice(2) : ['naples', 'rome'];
  const jobs: Job[] = [];
  for (const gen of gens) {
    const full = fs.readFileSync(path.join(DERIVED, gen, 'full_chain.cert'));
    for (const [name, lo, hi] of regions(gen, full)) {
      const bits = (hi - lo) * 8;
      for (let s = 0; s < bits; s += 512) jobs.push({ gen, name, lo, start: s, end: Math.min(bits, s + 512) });
    }
  }
  const nWorkers = Math.max(1, Math.min(os.availableParallelism?.() ?? os.cpus().length, 8));
  const t0 = performance.now();
  const results = await Promise.all(
    Array.from(
      { length: nWorkers },
      (_, w) =>
        new Promise<Result>((resolve, reject) => {
          const worker = tsWorker({ workerData: { jobs: jobs.filter((_j, i) => i % nWorkers === w) } });
          worker.once('message', resolve);
          worker.once('error', reject);
        }),
    ),
  );
  const secs = (performance.now() - t0) / 1000;
  const sum = results.reduce((a, r) => ({
    checked: a.checked + r.checked,
    byDecoder: a.byDecoder + r.byDecoder,
    byVerify: a.byVerify + r.byVerify,
    accepted: [...a.accepted, ...r.accepted],
    otherErrors: [...a.otherErrors, ...r.otherErrors],
  }));
  console.log(`chains: ${gens.join(', ')}; workers: ${nWorkers}; time: ${secs.toFixed(1)} s`);
  console.log(
    `flips: ${sum.checked}; rejected by decoder: ${sum.byDecoder}; rejected by verification: ${sum.byVerify}; accepted: ${sum.accepted.length}; untyped errors: ${sum.otherErrors.length}`,
  );
  for (const a of sum.accepted.slice(0, 20)) console.log(`ACCEPTED: ${a}`);
  for (const a of sum.otherErrors.slice(0, 20)) console.log(`UNTYPED: ${a}`);
  process.exitCode = sum.accepted.length || sum.otherErrors.length ? 1 : 0;
}
