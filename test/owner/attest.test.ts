/**
 * The owner's attest-and-inject against the guest agent on the simulated guest
 * side: the agent's reports come from lib/sim/snp (TEST VCEK), the VCEK from the
 * KDS stand-in through the real KDS client. Every refusal is checked to have
 * sent NO secret: the agent's inject counter stays 0 and the secrets dir empty.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { GuestAgent } from '../../lib/guest-agent/agent.js';
import { attestAndInject, AttestRefusedError, type AttestOptions } from '../../lib/owner/attest.js';
import { EthWallet } from '../../lib/aleph/wallet.js';
import { buildAttestedCertificate } from '../../lib/snp/ratls.js';
import { AMDSEV, OVMFX64, digestOf, startSimSnpSide, type SimSnpSide } from '../snp/agent-helpers.js';

describe('owner attest → guest agent (simulated SNP guest)', () => {
  let side: SimSnpSide;
  const owner = EthWallet.generate();
  const agents: GuestAgent[] = [];
  let n = 0;

  beforeAll(async () => {
    side = await startSimSnpSide();
  }, 240_000);
  afterEach(async () => {
    for (const a of agents.splice(0)) await a.close();
  });
  afterAll(async () => {
    await side?.close();
  });

  async function agent(): Promise<{ agent: GuestAgent; dir: string; url: string }> {
    const dir = path.join(side.dir, `secrets-${n++}`);
    const a = await GuestAgent.start({ owner: owner.address, secretsDir: dir, host: '127.0.0.1', port: 0, reportSource: side.source });
    agents.push(a);
    return { agent: a, dir, url: `https://127.0.0.1:${a.address().port}` };
  }

  const opts = (url: string, extra: Partial<AttestOptions> = {}): AttestOptions => ({
    url,
    expected: { firmware: AMDSEV, firmwareName: 'AmdSev', vcpus: 2, vcpuType: 'EPYC-v4' },
    kds: side.kdsClient(),
    roots: side.roots,
    deadlineMs: 90_000,
    ...extra,
  });

  it("a guest launched with the owner's firmware gets the secret, written 0600", async () => {
    side.configure({ measurement: digestOf().toString('hex') });
    const { agent: a, dir, url } = await agent();
    const r = await attestAndInject({ ...opts(url), wallet: owner, secrets: { 'luks-key': 'correct horse battery staple' } });
    expect(r.verdict.ok).toBe(true);
    expect(r.injected).toEqual(['luks-key']);
    expect(r.keyDigest.equals(a.keyDigest)).toBe(true);
    const f = path.join(dir, 'luks-key');
    expect(fs.readFileSync(f, 'utf8')).toBe('correct horse battery staple');
    expect(fs.statSync(f).mode & 0o777).toBe(0o600);
    expect(a.stats.injected).toBe(1);
  });

  it('a debug policy is refused and nothing is sent', async () => {
    side.configure({ measurement: digestOf().toString('hex'), policy: 0xb0000 });
    const { agent: a, dir, url } = await agent();
    const e = await attestAndInject({ ...opts(url), wallet: owner, secrets: { k: 'v' } }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(AttestRefusedError);
    expect((e as AttestRefusedError).verdict!.failed.map((c) => c.id)).toEqual(['guest-policy']);
    expect(a.stats.injectRequests).toBe(0);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('a guest booted from other firmware is refused, and the diagnosis names the firmware', async () => {
    side.configure({ measurement: digestOf(OVMFX64).toString('hex') });
    const { agent: a, dir, url } = await agent();
    const e = await attestAndInject({ ...opts(url, { otherFirmwares: [{ name: 'OvmfX64', image: OVMFX64 }] }), wallet: owner, secrets: { k: 'v' } }).catch(
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(AttestRefusedError);
    const r = e as AttestRefusedError;
    expect(r.code).toBe('ERR_ATTEST_MEASUREMENT');
    expect(r.diagnosis?.explained).toBe(true);
    expect(r.diagnosis?.differences.map((d) => d.field)).toEqual(['firmware']);
    expect(r.message).toMatch(/firmware/);
    expect(a.stats.injectRequests).toBe(0);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('a wrong vCPU count is diagnosed as such', async () => {
    side.configure({ measurement: digestOf(AMDSEV, 3).toString('hex') });
    const { agent: a, url } = await agent();
    const e = (await attestAndInject({ ...opts(url), wallet: owner, secrets: { k: 'v' } }).catch((x: unknown) => x)) as AttestRefusedError;
    expect(e.diagnosis?.differences).toEqual([{ field: 'vcpus', expected: '2', actual: '3' }]);
    expect(a.stats.injectRequests).toBe(0);
  });

  it('a man in the middle relaying a genuine report under its own TLS key is refused before any byte', async () => {
    side.configure({ measurement: digestOf().toString('hex') });
    const { agent: real, dir } = await agent();
    // The relay shows the real agent's genuine report, but in a certificate of its own key.
    const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const cert = buildAttestedCertificate({ privateKey, report: real.report });
    let received = 0;
    const mitm = https.createServer({ key: privateKey.export({ type: 'pkcs8', format: 'pem' }), cert: cert.pem }, (req, res) => {
      req.on('data', (c: Buffer) => (received += c.length));
      res.end('{}');
    });
    mitm.on('secureConnection', (s) => s.on('data', (c: Buffer) => (received += c.length)));
    await new Promise<void>((r) => mitm.listen(0, '127.0.0.1', r));
    try {
      const url = `https://127.0.0.1:${(mitm.address() as AddressInfo).port}`;
      const e = await attestAndInject({ ...opts(url), wallet: owner, secrets: { k: 'v' } }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(AttestRefusedError);
      expect((e as AttestRefusedError).verdict!.failed.map((c) => c.id)).toEqual(['report-data']);
      await new Promise((r) => setTimeout(r, 200));
      expect(received).toBe(0);
      expect(real.stats.injectRequests).toBe(0);
      expect(fs.readdirSync(dir)).toEqual([]);
    } finally {
      mitm.closeAllConnections();
      await new Promise((r) => mitm.close(r));
    }
  });

  it("TCB minimums above the platform's are refused", async () => {
    side.configure({ measurement: digestOf().toString('hex') });
    const { agent: a, url } = await agent();
    const e = (await attestAndInject({ ...opts(url, { policy: { minTcb: { snp: 255 } } }), wallet: owner, secrets: { k: 'v' } }).catch(
      (x: unknown) => x,
    )) as AttestRefusedError;
    expect(e).toBeInstanceOf(AttestRefusedError);
    expect(e.verdict!.failed.map((c) => c.id)).toContain('min-tcb');
    expect(a.stats.injectRequests).toBe(0);
  });

  it('a verified agent refuses an envelope signed by another wallet', async () => {
    side.configure({ measurement: digestOf().toString('hex') });
    const { agent: a, dir, url } = await agent();
    const e = await attestAndInject({ ...opts(url), wallet: EthWallet.generate(), secrets: { k: 'v' } }).catch((x: unknown) => x);
    expect((e as { code?: string }).code).toBe('ERR_ATTEST_INJECT');
    expect((e as { status?: number }).status).toBe(403);
    expect(a.stats.injectRequests).toBe(1);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
