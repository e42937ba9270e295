/**
 * A few thousand fuzzed requests through a real server (scripts/crn-fuzz.ts
 * runs ≥ 100,000): no answer may be a 500 or a dropped connection, the server
 * keeps answering afterwards and another owner's VM is untouched.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startCrnServer, type CrnServer } from '../../lib/crn/server.js';
import { createAuthSession } from '../../lib/crn/auth.js';
import { EthWallet } from '../../lib/crn/wallet.js';
import { CrnClient } from '../../lib/owner/client.js';
import { FakeCerts, FakeLauncher } from './fakes.js';
import { runFuzz } from './fuzz-harness.js';

const TOKEN = 'fuzz-token';
let tmp: string;
let srv: CrnServer;
let launcher: FakeLauncher;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'crn-fuzz-'));
  fs.writeFileSync(path.join(tmp, 'OVMF.fd'), crypto.randomBytes(4096));
  launcher = new FakeLauncher();
  srv = await startCrnServer({ host: '127.0.0.1', port: 0, domain: '127.0.0.1', certs: new FakeCerts(), launcher, runDir: path.join(tmp, 'run'), allocationToken: TOKEN, maxVms: 100_000 });
});
afterAll(async () => {
  await srv.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

it('3,000 fuzzed multipart/JSON/auth/path requests: each answered, none a 500, the server and other VMs unharmed', { timeout: 90_000 }, async () => {
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
  const stats = await runFuzz({ port: Number(new URL(srv.url).port), ref, auth: createAuthSession(fuzzer, { domain: '127.0.0.1' }), allocationToken: TOKEN }, 3000, 0x5e7c1);
  expect(stats.cases).toBe(3000);
  expect(stats.bad).toEqual([]);
  // Every class of refusal was exercised, not only one early exit.
  for (const s of ['400', '401', '404']) expect(stats.byStatus[s] ?? 0).toBeGreaterThan(0);
  expect((await fetch(`${srv.url}/status/config`)).status).toBe(200);
  expect(srv.service.state(victim)).toBe('awaiting-secret');
  const v = launcher.vms.find((x) => x.spec.ref === victim)!;
  expect(v.stopped).toBe(false);
  expect(v.injected).toEqual([]);
});
