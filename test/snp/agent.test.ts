/**
 * The guest agent on its own: aleph's REPORT_DATA schemes against the vendored
 * vectors, the certificate it serves, fresh reports, and what the inject
 * endpoint refuses (replays, stale or foreign envelopes, oversized bodies,
 * stalled clients) — with the secrets directory checked after each refusal.
 */
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { GuestAgent, type GuestAgentEvent } from '../../lib/guest-agent/agent.js';
import { EthWallet } from '../../lib/aleph/wallet.js';
import { signInjectEnvelope, type InjectEnvelope } from '../../lib/aleph/snp-inject.js';
import { alephFreshReportData, alephKeyBoundReportData, decodeAttestationJson, parseAttestedCertificate } from '../../lib/snp/ratls.js';
import { parseReport } from '../../lib/snp/report.js';
import { VECTORS } from '../helpers/cli.js';
import { startSimSnpSide, type SimSnpSide } from './agent-helpers.js';

const derived = JSON.parse(fs.readFileSync(path.join(VECTORS, 'snp-launch', 'aleph-snp-derived.json'), 'utf8'));

describe('aleph REPORT_DATA schemes', () => {
  const point = Buffer.from(derived.public_key.hex, 'hex');
  it('key-bound and fresh schemes reproduce the vectors', () => {
    expect(alephKeyBoundReportData(point).toString('hex')).toBe(derived.key_bound_report_data.hex);
    expect(alephFreshReportData(point, Buffer.from(derived.fresh_report_data.nonce_hex, 'hex')).toString('hex')).toBe(derived.fresh_report_data.hex);
  });
  it('a point that is not 97 bytes is refused', () => {
    expect(() => alephKeyBoundReportData(point.subarray(1))).toThrow(/97-byte/);
  });
});

/** One TLS connection to the agent; `raw` is sent as is and the whole answer returned. */
function exchange(port: number, raw: Buffer | string, timeoutMs = 60_000): Promise<{ text: string; cert: Buffer }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    const chunks: Buffer[] = [];
    let cert = Buffer.alloc(0);
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error('no answer'));
    }, timeoutMs);
    s.on('secureConnect', () => {
      cert = Buffer.from(s.getPeerX509Certificate()?.raw ?? []);
      s.end(raw);
    });
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(t);
      resolve({ text: Buffer.concat(chunks).toString('utf8'), cert });
    });
  });
}

function post(port: number, body: Buffer | string): Promise<{ status: number; json: any }> {
  const b = Buffer.from(body);
  return exchange(
    port,
    Buffer.concat([
      Buffer.from(
        `POST /confidential/inject-secret HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${b.length}\r\nConnection: close\r\n\r\n`,
      ),
      b,
    ]),
  ).then(({ text }) => {
    const status = Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 0);
    const json = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4) || 'null');
    return { status, json };
  });
}

describe('guest agent (simulated SNP guest)', () => {
  let side: SimSnpSide;
  const owner = EthWallet.generate();
  const agents: GuestAgent[] = [];
  const events: GuestAgentEvent[] = [];
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

  async function start(extra: Partial<Parameters<typeof GuestAgent.start>[0]> = {}) {
    const dir = path.join(side.dir, `s-${n++}`);
    const a = await GuestAgent.start({
      owner: owner.address,
      secretsDir: dir,
      host: '127.0.0.1',
      port: 0,
      reportSource: side.source,
      onEvent: (e) => events.push(e),
      ...extra,
    });
    agents.push(a);
    return { a, dir, port: a.address().port };
  }
  const envelope = (a: GuestAgent, secrets: Record<string, string>, o: { issuedAt?: number; wallet?: EthWallet } = {}): InjectEnvelope =>
    signInjectEnvelope(o.wallet ?? owner, { secrets, tlsKeyDigest: a.keyDigest, ...(o.issuedAt !== undefined ? { issuedAt: o.issuedAt } : {}) });

  it('serves a certificate whose report binds the served key (aleph scheme, aleph extension)', async () => {
    const { a, port } = await start();
    const { cert } = await exchange(port, 'GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(cert.equals(a.certificateDer)).toBe(true);
    const p = parseAttestedCertificate(cert);
    expect(p.publicPoint.equals(a.publicPoint)).toBe(true);
    expect(parseReport(p.report).reportData.equals(alephKeyBoundReportData(p.publicPoint))).toBe(true);
  });

  it('GET /.well-known/attestation gives a fresh report bound to key and nonce; bad nonces are 400', async () => {
    const { a, port } = await start();
    const nonce = 'ab'.repeat(32);
    const { text } = await exchange(port, `GET /.well-known/attestation?nonce=${nonce} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(text).toMatch(/^HTTP\/1\.1 200/);
    const report = decodeAttestationJson(Buffer.from(text.slice(text.indexOf('\r\n\r\n') + 4)));
    expect(parseReport(report).reportData.equals(alephFreshReportData(a.publicPoint, Buffer.from(nonce, 'hex')))).toBe(true);
    for (const bad of ['', 'nonce=', 'nonce=abc', `nonce=${'00'.repeat(65)}`, 'nonce=zz', 'nonce=00&nonce=11']) {
      const r = await exchange(port, `GET /.well-known/attestation?${bad} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      expect(r.text, bad).toMatch(/^HTTP\/1\.1 400/);
    }
    expect(a.stats.attestations).toBe(1);
  });

  it("accepts the owner's envelope once; a replay of it is 409 and changes nothing", async () => {
    const { a, dir, port } = await start();
    const env = envelope(a, { one: 'first', two: 'second' });
    const r = await post(port, JSON.stringify(env));
    expect(r).toEqual({ status: 200, json: { injected: ['one', 'two'] } });
    expect(fs.readFileSync(path.join(dir, 'two'), 'utf8')).toBe('second');
    expect(fs.statSync(path.join(dir, 'one')).mode & 0o777).toBe(0o600);
    fs.writeFileSync(path.join(dir, 'one'), 'changed by the guest');
    const again = await post(port, JSON.stringify(env));
    expect(again.status).toBe(409);
    expect(fs.readFileSync(path.join(dir, 'one'), 'utf8')).toBe('changed by the guest');
    // A new envelope (new id) re-injects: a typo is retryable.
    expect((await post(port, JSON.stringify(envelope(a, { one: 'fixed' })))).status).toBe(200);
    expect(fs.readFileSync(path.join(dir, 'one'), 'utf8')).toBe('fixed');
    // No secret value ever reaches the events.
    expect(JSON.stringify(events)).not.toMatch(/first|second|fixed/);
  });

  it('refuses envelopes signed by another wallet, for another TLS key, stale, tampered, or unsigned', async () => {
    const { a, dir, port } = await start();
    const { a: other } = await start();
    const cases: [string, unknown, number][] = [
      ['another wallet', envelope(a, { k: 'v' }, { wallet: EthWallet.generate() }), 403],
      ["another agent's key", envelope(other, { k: 'v' }), 403],
      ['stale', envelope(a, { k: 'v' }, { issuedAt: Math.floor(Date.now() / 1000) - 3600 }), 401],
      ['from the future', envelope(a, { k: 'v' }, { issuedAt: Math.floor(Date.now() / 1000) + 3600 }), 401],
      ['tampered secrets', { ...envelope(a, { k: 'v' }), secrets: { k: 'w' } }, 403],
      ['aleph dev snapshot plain secrets', { k: 'v' }, 400],
      ['no signature', { secrets: { k: 'v' } }, 401],
      ['bad secret name', envelope(a, { k: 'v' }) && { ...envelope(a, { k: 'v' }), secrets: { '../x': 'v' } }, 400],
      ['not JSON', 'nope', 400],
    ];
    for (const [what, body, status] of cases) {
      const r = await post(port, typeof body === 'string' ? body : JSON.stringify(body));
      expect(r.status, what).toBe(status);
    }
    expect(fs.readdirSync(dir)).toEqual([]);
    expect(a.stats.injected).toBe(0);
  });

  it('refuses an oversized body with 413 before reading it', async () => {
    const { a, dir, port } = await start();
    const { text } = await exchange(port, `POST /confidential/inject-secret HTTP/1.1\r\nHost: x\r\nContent-Length: ${3 * 1024 * 1024}\r\n\r\n`);
    expect(text).toMatch(/^HTTP\/1\.1 413/);
    expect(fs.readdirSync(dir)).toEqual([]);
    expect(a.stats.injected).toBe(0);
  });

  it('drops a stalled client at its deadline and keeps serving others', async () => {
    const { a, dir, port } = await start({ headersTimeoutMs: 500, bodyTimeoutMs: 500 });
    // Headers never finished, and a body that never comes: both connections end without any secret written.
    const [h, b] = await Promise.all([
      exchange(port, 'POST /confidential/inject-secret HTTP/1.1\r\nHost: x\r\n').catch(() => ({ text: 'still open' })),
      new Promise<string>((resolve) => {
        const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
        const chunks: Buffer[] = [];
        s.on('secureConnect', () => s.write('POST /confidential/inject-secret HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"sec'));
        s.on('data', (c: Buffer) => chunks.push(c));
        s.on('error', () => undefined);
        s.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
        setTimeout(() => s.destroy(), 60_000);
      }),
    ]);
    expect(h.text).not.toBe('still open');
    expect(b).toMatch(/^HTTP\/1\.1 408/);
    expect(fs.readdirSync(dir)).toEqual([]);
    expect((await post(port, JSON.stringify(envelope(a, { k: 'v' })))).status).toBe(200);
  });

  it('refuses to start without an Ethereum owner, or on a secrets dir others can write', async () => {
    await expect(GuestAgent.start({ owner: 'nobody', secretsDir: path.join(side.dir, 'x'), reportSource: side.source })).rejects.toThrow(/Ethereum address/);
    const open = path.join(side.dir, 'open');
    fs.mkdirSync(open, { mode: 0o777 });
    fs.chmodSync(open, 0o777);
    await expect(GuestAgent.start({ owner: owner.address, secretsDir: open, host: '127.0.0.1', port: 0, reportSource: side.source })).rejects.toThrow(
      /not writable by group or others/,
    );
  });
});
