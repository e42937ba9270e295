import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import http from 'node:http';
import path from 'node:path';
import { startCrnServer, type CrnServer } from '../../lib/crn/server.js';
import { createAuthSession } from '../../lib/aleph/auth.js';
import { EthWallet, SolWallet } from '../../lib/aleph/wallet.js';
import { CrnClient, CrnHttpError } from '../../lib/owner/client.js';
import { FakeCerts, FakeLauncher } from './fakes.js';

const TOKEN = 'allocation-token-for-tests';
const session = () => crypto.randomBytes(128).toString('base64');
const godh = () => crypto.randomBytes(0x824).toString('base64');
const newRef = () => crypto.randomBytes(32).toString('hex');

let tmp: string;
let srv: CrnServer;
let certs: FakeCerts;
let launcher: FakeLauncher;
const logs: string[] = [];
const owner = EthWallet.generate();
const firmware = () => path.join(tmp, 'OVMF.fd');

async function allocate(ref = newRef(), who: { address: string } = owner, policy = 1): Promise<string> {
  const c = new CrnClient({ url: srv.url });
  await c.allocate(TOKEN, { ref, owner: who.address, firmware: firmware(), policy, vcpus: 1, memory_mb: 512 });
  return ref;
}
function client(wallet = owner as EthWallet | SolWallet): CrnClient {
  return new CrnClient({ url: srv.url, wallet, domain: 'crn.test' });
}
async function until(fn: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 5));
  }
}
async function expectHttp(p: Promise<unknown>, status: number, detail?: RegExp): Promise<void> {
  await expect(p).rejects.toBeInstanceOf(CrnHttpError);
  await p.catch((e: CrnHttpError) => {
    expect(e.status).toBe(status);
    if (detail) expect(e.detail).toMatch(detail);
  });
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'crn-svc-'));
  fs.writeFileSync(firmware(), crypto.randomBytes(4096));
  certs = new FakeCerts();
  launcher = new FakeLauncher();
  srv = await startCrnServer({
    host: '127.0.0.1',
    port: 0,
    domain: 'crn.test',
    certs,
    launcher,
    runDir: path.join(tmp, 'run'),
    allocationToken: TOKEN,
    log: (l) => logs.push(l),
    platformKind: 'simulated',
  });
});
afterAll(async () => {
  await srv.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('public endpoints', () => {
  it('GET /about/certificates returns PDH‖PEK‖OCA‖CEK, exported once for concurrent requests', async () => {
    const before = certs.calls;
    const res = await Promise.all([1, 2, 3].map(() => fetch(`${srv.url}/about/certificates`)));
    for (const r of res) {
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toBe('application/octet-stream');
      const body = Buffer.from(await r.arrayBuffer());
      expect(body.length).toBe(8336);
      expect(body).toEqual(Buffer.concat([certs.certs.pdh, certs.certs.pek, certs.certs.oca, certs.certs.cek]));
    }
    expect(certs.calls - before).toBe(1);
  });

  it('serves the new chain after invalidateCertificates() (rotate)', async () => {
    await client().getCertificates();
    const calls = certs.calls;
    await client().getCertificates();
    expect(certs.calls).toBe(calls);
    certs.certs = FakeCerts.random();
    srv.service.invalidateCertificates();
    const after = await client().getCertificates();
    expect(after.subarray(0, 0x824)).toEqual(certs.certs.pdh);
  });

  it('503 with aleph body when confidential computing is disabled', async () => {
    const s = await startCrnServer({ host: '127.0.0.1', port: 0, domain: 'x', certs: null, launcher, runDir: path.join(tmp, 'run2') });
    try {
      const r = await fetch(`${s.url}/about/certificates`);
      expect(r.status).toBe(503);
      expect(await r.json()).toEqual({ error: 'Confidential computing setting not enabled on that server' });
      const cfg = (await (await fetch(`${s.url}/status/config`)).json()) as { computing: Record<string, unknown> };
      expect(cfg.computing.ENABLE_CONFIDENTIAL_COMPUTING).toBe(false);
    } finally {
      await s.close();
    }
  });

  it('GET /status/config says confidential computing is on and the platform is simulated', async () => {
    const cfg = (await client().statusConfig()) as { DOMAIN_NAME: string; computing: Record<string, unknown>; sevkit: Record<string, unknown> };
    expect(cfg.DOMAIN_NAME).toBe('crn.test');
    expect(cfg.computing.ENABLE_CONFIDENTIAL_COMPUTING).toBe(true);
    expect(cfg.sevkit.platform).toBe('simulated');
  });

  it('unknown path 404, wrong method 405', async () => {
    expect((await fetch(`${srv.url}/nope`)).status).toBe(404);
    expect((await fetch(`${srv.url}/about/certificates`, { method: 'POST' })).status).toBe(405);
  });
});

describe('allocation', () => {
  const post = (body: unknown, token: string | null = TOKEN) =>
    fetch(`${srv.url}/control/allocate`, { method: 'POST', headers: token ? { 'X-Auth-Signature': token } : {}, body: JSON.stringify(body) });
  const good = () => ({ ref: newRef(), owner: owner.address, firmware: firmware(), policy: 1, vcpus: 1, memory_mb: 256 });

  it('requires the token (401 plain text)', async () => {
    const r = await post(good(), 'wrong');
    expect(r.status).toBe(401);
    expect(await r.text()).toBe('Authentication token received is invalid');
    expect((await post(good(), null)).status).toBe(401);
  });

  it('is disabled without a configured token', async () => {
    const s = await startCrnServer({ host: '127.0.0.1', port: 0, domain: 'x', certs, launcher, runDir: path.join(tmp, 'run3') });
    try {
      expect((await fetch(`${s.url}/control/allocate`, { method: 'POST', headers: { 'X-Auth-Signature': '' }, body: '{}' })).status).toBe(403);
    } finally {
      await s.close();
    }
  });

  it('validates the body', async () => {
    for (const over of [
      { ref: 'ab' },
      { ref: 'G'.repeat(64) },
      { owner: 'bob' },
      { firmware: 'relative.fd' },
      { firmware: '/nonexistent/OVMF.fd' },
      { policy: -1 },
      { policy: 2 ** 32 },
      { vcpus: 0 },
      { memory_mb: 1.5 },
      { disk: 'rel' },
    ]) {
      const r = await post({ ...good(), ...over });
      expect(r.status, JSON.stringify(over)).toBe(400);
      expect(((await r.json()) as { error: string }).error).toBeTruthy();
    }
    expect((await fetch(`${srv.url}/control/allocate`, { method: 'POST', headers: { 'X-Auth-Signature': TOKEN }, body: '{x' })).status).toBe(400);
    const big = await fetch(`${srv.url}/control/allocate`, { method: 'POST', headers: { 'X-Auth-Signature': TOKEN }, body: 'x'.repeat(20000) });
    expect(big.status).toBe(413);
  });

  it('accepts a Solana owner and refuses a duplicate ref (409)', async () => {
    const body = { ...good(), owner: SolWallet.generate().address };
    expect((await post(body)).status).toBe(200);
    expect((await post(body)).status).toBe(409);
  });
});

describe('owner endpoints', () => {
  it('runs the aleph sequence: initialize → measurement → inject_secret → running', async () => {
    const ref = await allocate();
    const c = client();
    launcher.autoReady = false;
    try {
      expect(await c.initialize(ref, { session: session(), godh: godh() })).toBe(`Started VM with ref ${ref}`);
    } finally {
      launcher.autoReady = true;
    }
    const dir = path.join(tmp, 'run', 'sessions', ref);
    expect((fs.statSync(path.join(dir, 'vm_session.b64')).mode & 0o777).toString(8)).toBe('600');
    expect(fs.readFileSync(path.join(dir, 'vm_godh.b64'), 'latin1')).toHaveLength(2780);
    await until(() => launcher.vms.some((v) => v.spec.ref === ref));
    launcher.vms.find((v) => v.spec.ref === ref)!.becomeReady();
    await until(() => srv.service.state(ref) === 'awaiting-secret');
    // QEMU has the blobs once it is measured: the owner's upload does not stay on the host.
    expect(fs.existsSync(dir)).toBe(false);
    const m = await c.measurementOnce(ref);
    expect(m.status).toBe(200);
    expect(m.value!.sev_info).toMatchObject({ enabled: true, api_major: 1, api_minor: 55, build_id: 24, policy: 1, state: 'launch-secret' });
    expect(Buffer.from(m.value!.launch_measure, 'base64')).toHaveLength(48);
    const packet = { packet_header: crypto.randomBytes(52).toString('base64'), secret: crypto.randomBytes(64).toString('base64') };
    const res = await c.injectSecret(ref, packet);
    expect(res).toEqual({ status: { status: 'running', running: true, singlestep: false } });
    const vm = launcher.vms.find((v) => v.spec.ref === ref)!;
    expect(vm.injected).toEqual([{ packetHeader: packet.packet_header, secret: packet.secret }]);
    expect(vm.continued).toBe(true);
    expect(vm.spec.policy).toBe(1);
    // Wrong steps now: a second secret, a second initialize.
    await expectHttp(c.injectSecret(ref, packet), 409);
    await expectHttp(c.initialize(ref, { session: session(), godh: godh() }), 409, /already running/);
    // No secret material in the request log.
    expect(logs.join('\n')).not.toContain(packet.secret);
    expect(logs.join('\n')).not.toContain(packet.packet_header);
    expect(logs.some((l) => l.includes('/confidential/inject_secret 200'))).toBe(true);
  });

  it('503 while QEMU is starting, 409 before initialize', async () => {
    launcher.autoReady = false;
    try {
      const ref = await allocate();
      const c = client();
      expect((await c.measurementOnce(ref)).status).toBe(409);
      await c.initialize(ref, { session: session(), godh: godh() });
      const m = await c.measurementOnce(ref);
      expect(m.status).toBe(503);
      await expectHttp(
        c.injectSecret(ref, { packet_header: crypto.randomBytes(52).toString('base64'), secret: crypto.randomBytes(16).toString('base64') }),
        503,
      );
      launcher.vms.at(-1)!.becomeReady();
      await until(() => srv.service.state(ref) === 'awaiting-secret');
      expect((await c.measurementOnce(ref)).status).toBe(200);
    } finally {
      launcher.autoReady = true;
    }
  });

  describe('measurement long-poll (?wait=S)', () => {
    const poll = (ref: string, query: string) => {
      const p = `/control/machine/${ref}/confidential/measurement`;
      return fetch(`${srv.url}${p}${query}`, { headers: createAuthSession(owner, { domain: 'crn.test' }).headers('GET', p) });
    };

    it('holds the request while the VM starts and answers 200 once it awaits the secret', async () => {
      launcher.autoReady = false;
      try {
        const ref = await allocate();
        await client().initialize(ref, { session: session(), godh: godh() });
        let answered = false;
        const pending = poll(ref, '?wait=60').then((r) => ((answered = true), r));
        await new Promise((r) => setTimeout(r, 300));
        expect(answered).toBe(false);
        launcher.vms.at(-1)!.becomeReady();
        const r = await pending;
        expect(r.status).toBe(200);
        const body = (await r.json()) as { sev_info: { state: string }; launch_measure: string };
        expect(body.sev_info.state).toBe('launch-secret');
        expect(Buffer.from(body.launch_measure, 'base64')).toHaveLength(48);
      } finally {
        launcher.autoReady = true;
      }
    });

    it('answers the not-ready 503 with Retry-After when S seconds pass, and the failure when the launch fails', async () => {
      launcher.autoReady = false;
      try {
        const ref = await allocate();
        await client().initialize(ref, { session: session(), godh: godh() });
        const r = await poll(ref, '?wait=1');
        expect(r.status).toBe(503);
        expect(r.headers.get('retry-after')).toBe('1');
        const pending = poll(ref, '?wait=60');
        await new Promise((res) => setTimeout(res, 100));
        launcher.vms.at(-1)!.failLaunch('LAUNCH_START: SEV_RET_INVALID_PARAM');
        const f = await pending;
        expect(f.status).toBe(409);
        expect(await f.text()).toMatch(/LAUNCH_START/);
      } finally {
        launcher.autoReady = true;
      }
    });

    it('refuses a wait that is not one integer in [1, 120] (400); without it the answer is immediate', async () => {
      launcher.autoReady = false;
      try {
        const ref = await allocate();
        await client().initialize(ref, { session: session(), godh: godh() });
        for (const q of ['?wait=0', '?wait=121', '?wait=abc', '?wait=1.5', '?wait=', '?wait=1&wait=2', '?wait=-1']) {
          const r = await poll(ref, q);
          expect(r.status, q).toBe(400);
          expect(await r.text()).toMatch(/wait must be one integer number of seconds in \[1, 120\]/);
        }
        expect((await poll(ref, '')).status).toBe(503);
        expect((await poll(ref, '?other=1')).status).toBe(503);
      } finally {
        launcher.autoReady = true;
      }
    });

    it('an allocated VM that was never initialised answers at once (409), wait or not', async () => {
      const ref = await allocate();
      const r = await poll(ref, '?wait=60');
      expect(r.status).toBe(409);
    });
  });

  it('a failed launch is reported (409) and initialize may be retried', async () => {
    launcher.autoReady = false;
    try {
      const ref = await allocate();
      const c = client();
      await c.initialize(ref, { session: session(), godh: godh() });
      launcher.vms.at(-1)!.failLaunch('LAUNCH_START: SEV_RET_INVALID_PARAM');
      await until(() => srv.service.state(ref) === 'failed');
      const m = await c.measurementOnce(ref);
      expect(m.status).toBe(409);
      expect(m.detail).toMatch(/LAUNCH_START/);
      expect(await c.initialize(ref, { session: session(), godh: godh() })).toMatch(/^Started VM/);
    } finally {
      launcher.autoReady = true;
    }
  });

  it('a rejected secret (firmware error) is a 422, not a 500 (aleph #668), and the owner may retry', async () => {
    const ref = await allocate();
    const c = client();
    await c.initialize(ref, { session: session(), godh: godh() });
    await until(() => srv.service.state(ref) === 'awaiting-secret');
    const vm = launcher.vms.at(-1)!;
    vm.rejectInject = Object.assign(new Error('SEV_RET_INVALID_PARAM'), { name: 'QmpError' });
    const pkt = { packet_header: crypto.randomBytes(52).toString('base64'), secret: crypto.randomBytes(32).toString('base64') };
    await expectHttp(c.injectSecret(ref, pkt), 422, /The secret packet was refused \(SEV_RET_INVALID_PARAM\); VM [0-9a-f]{64} still awaits its secret/);
    expect(vm.continued).toBe(false);
    vm.rejectInject = undefined;
    expect((await c.injectSecret(ref, pkt)).status).toMatchObject({ running: true });
  });

  it('checks the body of inject_secret', async () => {
    const ref = await allocate();
    const c = client();
    await c.initialize(ref, { session: session(), godh: godh() });
    await until(() => srv.service.state(ref) === 'awaiting-secret');
    const p = `/control/machine/${ref}/confidential/inject_secret`;
    const auth = createAuthSession(owner, { domain: 'crn.test' });
    const post = (body: string) => fetch(srv.url + p, { method: 'POST', headers: auth.headers('POST', p), body });
    expect(await (await post('not json')).json()).toEqual({ error: 'Body is not valid JSON' });
    for (const b of [
      {},
      { packet_header: 'AAAA', secret: crypto.randomBytes(16).toString('base64') },
      // Any non-empty length is the firmware's to judge (aleph #16: the SDK's tables are not always 16-aligned).
      { packet_header: crypto.randomBytes(52).toString('base64'), secret: '' },
      { packet_header: crypto.randomBytes(52).toString('base64'), secret: 'not base64!' },
    ]) {
      expect((await post(JSON.stringify(b))).status, JSON.stringify(b)).toBe(400);
    }
    expect((await post('x'.repeat(70000))).status).toBe(413);
    expect(launcher.vms.at(-1)!.injected).toEqual([]);
  });

  it('checks the initialize upload: fields, encodings, limits; writes nothing on error', async () => {
    const ref = await allocate();
    const p = `/control/machine/${ref}/confidential/initialize`;
    const auth = createAuthSession(owner, { domain: 'crn.test' });
    const send = async (parts: [string, string][]) => {
      const form = new FormData();
      for (const [k, v] of parts) form.append(k, new Blob([v]), `${k}.b64`);
      const r = await fetch(srv.url + p, { method: 'POST', headers: auth.headers('POST', p), body: form });
      return { status: r.status, body: (await r.json().catch(() => null)) as Record<string, string> | null };
    };
    expect(await send([['godh', godh()]])).toEqual({ status: 400, body: { code: 'field_missing', description: 'Session field is missing' } });
    expect((await send([['session', session()]])).body!.description).toMatch(/godh field is missing/);
    expect(fs.existsSync(path.join(tmp, 'run', 'sessions', ref))).toBe(false);
    expect(
      (
        await send([
          ['session', 'AAAA'],
          ['godh', godh()],
        ])
      ).body!.code,
    ).toBe('field_invalid');
    expect(
      (
        await send([
          ['session', session()],
          ['godh', session()],
        ])
      ).body!.code,
    ).toBe('field_invalid');
    expect(
      (
        await send([
          ['session', session()],
          ['godh', godh()],
          ['a', '1'],
          ['b', '2'],
          ['c', '3'],
        ])
      ).status,
    ).toBe(413);
    expect(
      (
        await send([
          ['session', session()],
          ['godh', 'A'.repeat(20000)],
        ])
      ).status,
    ).toBe(413);
    expect(
      (
        await send([
          ['session', session()],
          ['session', session()],
          ['godh', godh()],
        ])
      ).status,
    ).toBe(400);
    const notMultipart = await fetch(srv.url + p, { method: 'POST', headers: { ...auth.headers('POST', p), 'Content-Type': 'application/json' }, body: '{}' });
    expect(notMultipart.status).toBe(400);
    expect(srv.service.state(ref)).toBe('allocated');
    // sevctl writes no newline, but a trailing one is tolerated.
    expect(
      (
        await send([
          ['session', `${session()}\n`],
          ['godh', godh()],
        ])
      ).status,
    ).toBe(200);
  });

  it('hostile clients: huge headers are refused, undeclared (chunked) bodies are cut at the limit', async () => {
    const raw = (p: string, headers: Record<string, string>, chunks: Buffer[]): Promise<{ status: number }> =>
      new Promise((resolve, reject) => {
        const req = http.request(srv.url + p, { method: 'POST', headers: { ...headers, 'Transfer-Encoding': 'chunked' } }, (res) => {
          res.resume();
          resolve({ status: res.statusCode! });
        });
        req.on('error', reject);
        const next = (): void => {
          const c = chunks.shift();
          if (!c) return void req.end();
          req.write(c, () => setImmediate(next));
        };
        next();
      });
    const big = await raw('/control/allocate', { 'X-Auth-Signature': TOKEN, 'X-Filler': 'x'.repeat(40 * 1024) }, [Buffer.from('{}')]);
    expect(big.status).toBe(431);

    const ref = await allocate();
    const auth = createAuthSession(owner, { domain: 'crn.test' });
    const inject = `/control/machine/${ref}/confidential/inject_secret`;
    const json = await raw(
      inject,
      auth.headers('POST', inject),
      Array.from({ length: 40 }, () => Buffer.alloc(4096, 0x20)),
    );
    expect(json.status).toBe(413);
    const init = `/control/machine/${ref}/confidential/initialize`;
    const boundary = 'sevkitboundary';
    const part = (i: number) => Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="p${i}"\r\n\r\n1\r\n`);
    const flood = await raw(
      init,
      { ...auth.headers('POST', init), 'Content-Type': `multipart/form-data; boundary=${boundary}` },
      Array.from({ length: 2000 }, (_, i) => part(i)),
    );
    expect(flood.status).toBe(413);
    expect(srv.service.state(ref)).toBe('allocated');
  });

  it('authentication and authorization: 400/401/403/404 as aleph', async () => {
    const ref = await allocate();
    const other = EthWallet.generate();
    const r403 = await fetch(`${srv.url}/control/machine/${ref}/confidential/measurement`, {
      headers: createAuthSession(other, { domain: 'crn.test' }).headers('GET', `/control/machine/${ref}/confidential/measurement`),
    });
    expect(r403.status).toBe(403);
    expect(await r403.text()).toBe('Unauthorized sender');
    const noAuth = await fetch(`${srv.url}/control/machine/${ref}/confidential/measurement`);
    expect(noAuth.status).toBe(400);
    expect(await noAuth.json()).toEqual({ error: 'Missing X-SignedPubKey header' });
    // Signed for another CRN.
    const wrongDomain = await fetch(`${srv.url}/control/machine/${ref}/confidential/measurement`, {
      headers: createAuthSession(owner, { domain: 'evil.test' }).headers('GET', `/control/machine/${ref}/confidential/measurement`),
    });
    expect(wrongDomain.status).toBe(401);
    // Signed for another VM's path.
    const other2 = newRef();
    const wrongPath = await fetch(`${srv.url}/control/machine/${ref}/confidential/measurement`, {
      headers: createAuthSession(owner, { domain: 'crn.test' }).headers('GET', `/control/machine/${other2}/confidential/measurement`),
    });
    expect(wrongPath.status).toBe(401);
    const unknown = newRef();
    expect((await client().measurementOnce(unknown)).status).toBe(404);
    expect((await client().measurementOnce('not-a-ref')).status).toBe(400);
    // Case of an Ethereum address does not matter, as in aleph.
    const lower = await allocate(newRef(), { address: owner.address.toLowerCase() });
    expect((await client().measurementOnce(lower)).status).toBe(409);
    // Solana owner.
    const sol = SolWallet.generate();
    const sref = await allocate(newRef(), sol);
    expect((await client(sol).measurementOnce(sref)).status).toBe(409);
    expect((await client().measurementOnce(sref)).status).toBe(403);
  });

  it('a VM that exits after running is reported stopped; close() stops every VM', async () => {
    const ref = await allocate();
    const c = client();
    await c.initialize(ref, { session: session(), godh: godh() });
    await until(() => srv.service.state(ref) === 'awaiting-secret');
    launcher.vms.at(-1)!.exit('QEMU exited with code 0');
    expect(srv.service.state(ref)).toBe('failed');
    expect((await c.measurementOnce(ref)).detail).toMatch(/QEMU exited/);

    const s = await startCrnServer({ host: '127.0.0.1', port: 0, domain: 'crn.test', certs, launcher, runDir: path.join(tmp, 'run4'), allocationToken: TOKEN });
    const c2 = new CrnClient({ url: s.url, wallet: owner, domain: 'crn.test' });
    const refs = [newRef(), newRef()];
    for (const r of refs) {
      await c2.allocate(TOKEN, { ref: r, owner: owner.address, firmware: firmware(), policy: 1, vcpus: 1, memory_mb: 256 });
      await c2.initialize(r, { session: session(), godh: godh() });
    }
    await until(() => refs.every((r) => s.service.state(r) === 'awaiting-secret'));
    const mine = launcher.vms.filter((v) => refs.includes(v.spec.ref));
    await s.close();
    expect(mine.map((v) => v.stopped)).toEqual([true, true]);
  });
});
