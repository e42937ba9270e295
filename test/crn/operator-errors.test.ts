/**
 * What an operator sees when the host itself is at fault: a full disk under
 * the run dir is a JSON 507 naming it, a dead simulator/device a JSON 503 with
 * Retry-After, never Node's raw error text or a 500.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ListenError, listenError, startCrnServer, type CrnServer } from '../../lib/crn/server.js';
import { EthWallet } from '../../lib/aleph/wallet.js';
import { CrnClient } from '../../lib/owner/client.js';
import { cliEntry, ROOT } from '../helpers/cli.js';
import { FakeCerts, FakeLauncher } from './fakes.js';

const TOKEN = 'op-token';
const simReason = process.env.SEVKIT_SIM_UNAVAILABLE;
let tmp: string;
let srv: CrnServer;
let runDir: string;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'crn-op-'));
  fs.writeFileSync(path.join(tmp, 'OVMF.fd'), crypto.randomBytes(4096));
  runDir = path.join(tmp, 'run');
  srv = await startCrnServer({
    host: '127.0.0.1',
    port: 0,
    domain: '127.0.0.1',
    certs: new FakeCerts(),
    launcher: new FakeLauncher(),
    runDir,
    allocationToken: TOKEN,
  });
});
afterAll(async () => {
  vi.restoreAllMocks();
  await srv.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Makes every file creation under the run dir fail as on a full disk. */
function diskFull(): () => void {
  const enospc = (p: unknown) =>
    Object.assign(new Error(`ENOSPC: no space left on device, open '${String(p)}'`), { code: 'ENOSPC', errno: -28, syscall: 'open', path: String(p) });
  const open = fs.openSync;
  const write = fs.writeFileSync;
  const a = vi.spyOn(fs, 'openSync').mockImplementation(((p: fs.PathLike, ...rest: unknown[]) => {
    if (String(p).startsWith(runDir) && String(p).endsWith('.tmp')) throw enospc(p);
    return (open as (...a: unknown[]) => number)(p, ...rest);
  }) as typeof fs.openSync);
  const b = vi.spyOn(fs, 'writeFileSync').mockImplementation(((p: fs.PathOrFileDescriptor, ...rest: unknown[]) => {
    if (typeof p === 'string' && p.startsWith(runDir)) throw enospc(p);
    return (write as (...a: unknown[]) => void)(p, ...rest);
  }) as typeof fs.writeFileSync);
  // The VM records and session files are written off the event loop (fs.promises).
  const openAsync = fs.promises.open;
  const c = vi.spyOn(fs.promises, 'open').mockImplementation(((p: fs.PathLike, ...rest: unknown[]) => {
    if (String(p).startsWith(runDir) && String(p).endsWith('.tmp')) return Promise.reject(enospc(p));
    return (openAsync as (...a: unknown[]) => Promise<fs.promises.FileHandle>)(p, ...rest);
  }) as typeof fs.promises.open);
  return () => {
    a.mockRestore();
    b.mockRestore();
    c.mockRestore();
  };
}

describe('a full disk', () => {
  it('allocate and initialize answer a JSON 507 naming the run dir; the service keeps serving', async () => {
    const owner = EthWallet.generate();
    const body = (ref: string) => ({ ref, owner: owner.address, firmware: path.join(tmp, 'OVMF.fd'), policy: 1, vcpus: 1, memory_mb: 256 });
    const ref = crypto.randomBytes(32).toString('hex');
    await new CrnClient({ url: srv.url }).allocate(TOKEN, body(ref));
    const undo = diskFull();
    try {
      const r = await fetch(`${srv.url}/control/allocate`, {
        method: 'POST',
        headers: { 'X-Auth-Signature': TOKEN, 'Content-Type': 'application/json' },
        body: JSON.stringify(body(crypto.randomBytes(32).toString('hex'))),
      });
      expect(r.status).toBe(507);
      expect(r.headers.get('content-type')).toMatch(/^application\/json/);
      const j = (await r.json()) as { error: string };
      expect(j.error).toBe(`The CRN host cannot store files (ENOSPC): the disk of its run directory ${runDir} is full or read-only`);
      const e = await new CrnClient({ url: srv.url, wallet: owner, domain: '127.0.0.1' })
        .initialize(ref, { session: crypto.randomBytes(128).toString('base64'), godh: crypto.randomBytes(0x824).toString('base64') })
        .catch((x: Error) => x);
      expect(String((e as Error).message)).toMatch(/507/);
      expect(String((e as Error).message)).not.toMatch(/no space left on device, open/);
    } finally {
      undo();
    }
    expect(srv.service.state(ref)).toBe('failed');
    expect((await fetch(`${srv.url}/status/config`)).status).toBe(200);
  });
});

describe.skipIf(Boolean(simReason))('a dead simulator', { timeout: 120_000 }, () => {
  it('GET /about/certificates is a JSON 503 with Retry-After, and crn serve keeps running', async () => {
    const { startSim } = await import('../../lib/sim/session.js');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crn-deadsim-'));
    const sim = await startSim({ stateDir: path.join(dir, 'sim'), seed: '3' });
    const proc = spawn(
      process.execPath,
      [...cliEntry(), 'crn', 'serve', '--listen', '127.0.0.1:0', '--domain', '127.0.0.1', '--run-dir', path.join(dir, 'run'), '--quiet', '--cert-ttl', '0'],
      {
        cwd: ROOT,
        env: { ...sim.env, SEVKIT_REAL_QEMU: 'none', NO_COLOR: '1' },
      },
    );
    let err = '';
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise((r) => proc.on('exit', r));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        proc.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /^listening on (\S+)$/m.exec(out);
          if (m) resolve(m[1]!);
        });
        proc.on('exit', (c) => reject(new Error(`serve exited ${c}: ${err}`)));
      });
      expect((await fetch(`${url}/about/certificates`)).status).toBe(200);
      await sim.close();
      const r = await fetch(`${url}/about/certificates`);
      const text = await r.text();
      expect(r.status, text).toBe(503);
      expect(r.headers.get('retry-after')).toBe('5');
      expect((JSON.parse(text) as { error: string }).error).toMatch(
        /^The SEV platform is unavailable \(E[A-Z]+.*\): the device or its driver is not answering$/,
      );
      expect((await fetch(`${url}/status/config`)).status).toBe(200);
    } finally {
      proc.kill('SIGTERM');
      await exited;
      await sim.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('listen failures', () => {
  it('a busy port is a ListenError naming the address, and the service is closed keeping nothing running', async () => {
    const port = Number(new URL(srv.url).port);
    const e = await startCrnServer({
      host: '127.0.0.1',
      port,
      domain: 'x',
      certs: null,
      launcher: new FakeLauncher(),
      runDir: path.join(tmp, 'run-busy'),
    }).catch((x: Error) => x);
    expect(e).toBeInstanceOf(ListenError);
    expect((e as ListenError).message).toBe(
      `cannot listen on 127.0.0.1:${port}: the address is already in use (another crn serve or service holds it); stop that one or choose another port`,
    );
  });

  it('EACCES on a privileged port says what to do (the tests may run as root, so the mapping is checked directly)', () => {
    const e = listenError(Object.assign(new Error('listen EACCES: permission denied 0.0.0.0:80'), { code: 'EACCES' }), '0.0.0.0', 80);
    expect(e.message).toBe(
      'cannot listen on 0.0.0.0:80: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE); choose a port of 1024 or more',
    );
    expect(listenError(Object.assign(new Error('x'), { code: 'EADDRNOTAVAIL' }), '::1', 4020).message).toMatch(
      /^cannot listen on \[::1\]:4020: no network interface/,
    );
  });
});
