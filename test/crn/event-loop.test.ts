/**
 * A CRN serving many owners must not hold its event loop for the disk: no
 * synchronous file call (open, write, fsync, rename, stat, mkdir, rm) on the
 * path of allocate → initialize → measurement → inject_secret → VM end. Every
 * one of them would stall every other owner's request for as long as the disk
 * takes (an fsync is milliseconds to seconds).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startCrnServer, type CrnServer } from '../../lib/crn/server.js';
import { EthWallet } from '../../lib/aleph/wallet.js';
import { CrnClient } from '../../lib/owner/client.js';
import { FakeCerts, FakeLauncher } from './fakes.js';

const TOKEN = 'loop-token';
let tmp: string;
let srv: CrnServer;
let launcher: FakeLauncher;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'crn-loop-'));
  fs.writeFileSync(path.join(tmp, 'OVMF.fd'), crypto.randomBytes(4096));
  launcher = new FakeLauncher();
  srv = await startCrnServer({
    host: '127.0.0.1',
    port: 0,
    domain: '127.0.0.1',
    certs: new FakeCerts(),
    launcher,
    runDir: path.join(tmp, 'run'),
    allocationToken: TOKEN,
  });
});
afterAll(async () => {
  vi.restoreAllMocks();
  await srv.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const SYNC_CALLS = [
  'openSync',
  'writeFileSync',
  'writeSync',
  'fsyncSync',
  'renameSync',
  'statSync',
  'lstatSync',
  'mkdirSync',
  'rmSync',
  'rmdirSync',
  'readFileSync',
  'readdirSync',
  'chmodSync',
  'fchmodSync',
  'closeSync',
] as const;

/** Records every synchronous fs call made while `fn` runs that names a path under `under` (or a descriptor). */
async function syncCallsDuring(under: string, fn: () => Promise<void>): Promise<string[]> {
  const seen: string[] = [];
  const spies = SYNC_CALLS.map((name) => {
    const orig = (fs as unknown as Record<string, (...a: unknown[]) => unknown>)[name]!;
    return vi.spyOn(fs as unknown as Record<string, (...a: unknown[]) => unknown>, name).mockImplementation((...args: unknown[]) => {
      const a0 = args[0];
      if (typeof a0 === 'number' || String(a0).startsWith(under)) seen.push(`${name}(${String(a0)})`);
      return orig(...args);
    });
  });
  try {
    await fn();
  } finally {
    for (const s of spies) s.mockRestore();
  }
  return seen;
}

describe('the CRN request path', () => {
  it('makes no synchronous file call from allocation to the VM stopping', async () => {
    const owner = EthWallet.generate();
    const ref = crypto.randomBytes(32).toString('hex');
    const c = new CrnClient({ url: srv.url, wallet: owner });
    const calls = await syncCallsDuring(tmp, async () => {
      await new CrnClient({ url: srv.url }).allocate(TOKEN, {
        ref,
        owner: owner.address,
        firmware: path.join(tmp, 'OVMF.fd'),
        policy: 1,
        vcpus: 1,
        memory_mb: 256,
      });
      await c.initialize(ref, { session: crypto.randomBytes(128).toString('base64'), godh: crypto.randomBytes(0x824).toString('base64') });
      const end = Date.now() + 10_000;
      while (srv.service.state(ref) !== 'awaiting-secret' && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
      expect((await c.measurementOnce(ref)).status).toBe(200);
      await c.injectSecret(ref, { packet_header: crypto.randomBytes(52).toString('base64'), secret: crypto.randomBytes(64).toString('base64') });
      expect(srv.service.state(ref)).toBe('running');
      // the guest powers off: the CRN records it and removes its files
      launcher.vms.find((v) => v.spec.ref === ref)!.exit('guest powered off');
      const gone = Date.now() + 10_000;
      while (fs.existsSync(path.join(tmp, 'run', 'vms', ref)) && Date.now() < gone) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 50));
    });
    expect(srv.service.state(ref)).toBe('stopped');
    expect(fs.existsSync(path.join(tmp, 'run', 'sessions', ref))).toBe(false);
    const rec = JSON.parse(await fs.promises.readFile(path.join(tmp, 'run', 'machines', `${ref}.json`), 'utf8')) as { state: string };
    expect(rec.state).toBe('stopped');
    expect(calls).toEqual([]);
  });
});
