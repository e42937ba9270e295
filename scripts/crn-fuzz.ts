#!/usr/bin/env -S node --import tsx
/**
 * CRN request fuzzing (not part of `npm test`; test/crn/fuzz.test.ts runs 3,000):
 * N fuzzed multipart / JSON / auth-header / path requests through a real
 * server over raw TCP. Fails (exit 1) on any 500, any dropped connection that
 * owed an answer, a server that stops answering, or another owner's VM touched.
 *
 *   node --import tsx scripts/crn-fuzz.ts [cases=100000] [seed=1]
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startCrnServer } from '../lib/crn/server.js';
import { createAuthSession } from '../lib/crn/auth.js';
import { EthWallet } from '../lib/crn/wallet.js';
import { CrnClient } from '../lib/owner/client.js';
import { FakeCerts, FakeLauncher } from '../test/crn/fakes.js';
import { runFuzz } from '../test/crn/fuzz-harness.js';

const cases = Number(process.argv[2] ?? 100_000);
const seed = Number(process.argv[3] ?? 1);
const TOKEN = crypto.randomBytes(16).toString('hex');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'crn-fuzz-'));
fs.writeFileSync(path.join(tmp, 'OVMF.fd'), crypto.randomBytes(4096));
const launcher = new FakeLauncher();
const srv = await startCrnServer({ host: '127.0.0.1', port: 0, domain: '127.0.0.1', certs: new FakeCerts(), launcher, runDir: path.join(tmp, 'run'), allocationToken: TOKEN, maxVms: 1_000_000 });
let failed = false;
try {
  const alloc = async (who: EthWallet) => {
    const ref = crypto.randomBytes(32).toString('hex');
    await new CrnClient({ url: srv.url }).allocate(TOKEN, { ref, owner: who.address, firmware: path.join(tmp, 'OVMF.fd'), policy: 1, vcpus: 1, memory_mb: 256 });
    return ref;
  };
  const victimOwner = EthWallet.generate();
  const victim = await alloc(victimOwner);
  await new CrnClient({ url: srv.url, wallet: victimOwner, domain: '127.0.0.1' }).initialize(victim, { session: crypto.randomBytes(128).toString('base64'), godh: crypto.randomBytes(0x824).toString('base64') });
  const fuzzer = EthWallet.generate();
  const ref = await alloc(fuzzer);
  const t0 = performance.now();
  const stats = await runFuzz({ port: Number(new URL(srv.url).port), ref, auth: createAuthSession(fuzzer, { domain: '127.0.0.1' }), allocationToken: TOKEN }, cases, seed);
  const s = (performance.now() - t0) / 1000;
  process.stdout.write(`${stats.cases} cases in ${s.toFixed(1)} s; statuses ${JSON.stringify(stats.byStatus)}\n`);
  for (const b of stats.bad) process.stdout.write(`BAD ${b.status} ${b.kind}: ${b.request}\n`);
  const alive = (await fetch(`${srv.url}/status/config`)).status === 200;
  const v = launcher.vms.find((x) => x.spec.ref === victim)!;
  const untouched = srv.service.state(victim) === 'awaiting-secret' && !v.stopped && v.injected.length === 0;
  process.stdout.write(`server answers afterwards: ${alive}; other owner's VM untouched: ${untouched}\n`);
  failed = stats.bad.length > 0 || !alive || !untouched;
} finally {
  await srv.close();
  fs.rmSync(tmp, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
