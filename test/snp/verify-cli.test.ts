import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { SNP_VECTORS } from './vectors.js';

const V = (rel: string) => path.join(SNP_VECTORS, rel);
const OAK = V('derived/oak_milan_v3_report.bin');
const OAK_VCEK = V('derived/oak_milan_vcek.der');
const T = { timeoutMs: 120_000 };

let tmp = '';
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-snp-cli-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('sevkit snp verify', () => {
  it('a real report verifies: exit 0, JSON names version, product, policy, measurement, reported TCB, chip id and every check', async () => {
    const r = await runCli(
      [
        'snp',
        'verify',
        '--report',
        OAK,
        '--vcek',
        OAK_VCEK,
        '--json',
        '--measurement',
        '195b01b74976a1faba13bd85eaf787958f0a46e6dddd45c5bdbf8673522777842b8057ae5d866b75416efb62012deaa3',
      ],
      T,
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as Record<string, unknown> & { checks: { id: string; outcome: string }[] };
    expect(j.valid).toBe(true);
    expect(j.version).toBe(3);
    expect(j.product).toBe('Milan');
    expect((j.policy as { raw: string }).raw).toBe('0x30000');
    expect(j.measurement).toMatch(/^195b01b7/);
    expect((j.reportedTcb as { raw: string }).raw).toBe('04000000000018db');
    expect(j.chipId).toMatch(/^a3fdc2c6/);
    expect(j.checks.find((c) => c.id === 'measurement')!.outcome).toBe('pass');
  });

  it('a pinned measurement it does not have: exit 1, the failed check named on stderr', async () => {
    const r = await runCli(['snp', 'verify', '--report', OAK, '--vcek', OAK_VCEK, '--measurement', '00'.repeat(48)], T);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/FAIL 15 measurement/);
    expect(r.stderr).toBe('sevkit: the attestation report is NOT valid (failed: measurement)\n');
  });

  it('a tampered report and a foreign VCEK are refused', async () => {
    const bad = path.join(tmp, 'tampered.bin');
    const b = fs.readFileSync(OAK);
    b[0x50]! ^= 0x80;
    fs.writeFileSync(bad, b);
    const r1 = await runCli(['snp', 'verify', '--report', bad, '--vcek', OAK_VCEK, '--json'], T);
    expect(r1.code).toBe(1);
    expect((JSON.parse(r1.stdout) as { failed: string[] }).failed).toEqual(['report-signature']);
    const r2 = await runCli(['snp', 'verify', '--report', OAK, '--vcek', V('virtee-sev/tests/certs_data/vcek_milan.der'), '-q'], T);
    expect(r2.code).toBe(1);
    expect(r2.stdout + r2.stderr).toBe('');
  });

  it('an expired VLEK verifies at a fixed time (--at) with provisional firmware allowed; --certs reads a directory', async () => {
    const dir = path.join(tmp, 'certs');
    fs.mkdirSync(dir);
    fs.copyFileSync(V('edgelesssys-constellation/internal/attestation/aws/snp/testdata/vlek.pem'), path.join(dir, 'vlek.pem'));
    fs.copyFileSync(V('google-go-sev-guest/verify/trust/ask_ark_milan_vlek.pem'), path.join(dir, 'cert_chain.pem'));
    const args = ['snp', 'verify', '--report', V('derived/constellation_aws_vlek_v3_report.bin'), '--certs', dir, '--allow-provisional'];
    expect((await runCli([...args, '--at', '2025-06-01T00:00:00Z'], T)).code).toBe(0);
    const now = await runCli(args, T);
    expect(now.code).toBe(1);
    expect(now.stderr).toMatch(/failed: validity/);
  });

  it('bad input: one clear line, no stack; usage errors exit 2', async () => {
    const short = path.join(tmp, 'short.bin');
    fs.writeFileSync(short, Buffer.alloc(100));
    const r1 = await runCli(['snp', 'verify', '--report', short, '--vcek', OAK_VCEK], T);
    expect(r1.code).toBe(1);
    expect(r1.stdout).toMatch(/FAIL  1 report-format: attestation report size: must be exactly 1184 bytes, got 100/);
    const r2 = await runCli(['snp', 'verify', '--report', OAK, '--vcek', OAK_VCEK, '--min-tcb', 'bogus=1'], T);
    expect(r2.code).toBe(2);
    expect(r2.stderr.trim().split('\n')).toHaveLength(1);
    const r3 = await runCli(['snp', 'verify', '--report', OAK, '--vcek', OAK_VCEK, '--certs', tmp], T);
    expect(r3.code).toBe(2);
    const r4 = await runCli(['snp', 'show', path.join(tmp, 'missing.bin')], T);
    expect(r4.code).toBe(1);
    expect(r4.stderr).toBe(`sevkit: ${path.join(tmp, 'missing.bin')}: cannot read an attestation report: ENOENT\n`);
    const r5 = await runCli(['snp', 'show', short], T);
    expect(r5.stderr).toBe('sevkit: attestation report size: must be exactly 1184 bytes, got 100\n');
    for (const r of [r1, r2, r3, r4, r5]) expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('sevkit snp show', () => {
  it('prints the fields, JSON too; a v2 report needs --product for its product', async () => {
    const r = await runCli(['snp', 'show', '--json', V('google-go-sev-guest/verify/testdata/attestation.bin'), '--product', 'milan'], T);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as { version: number; product: string; policy: { debug: boolean }; reportedTcb: { snp: number } };
    expect([j.version, j.product, j.policy.debug, j.reportedTcb.snp]).toEqual([2, 'Milan', true, 5]);
    const t = await runCli(['snp', 'show', OAK], T);
    expect(t.stdout).toMatch(/^REPORTED_TCB\s+bl4 tee0 snp24 ucode219$/m);
  });
});

describe('sevkit snp fetch and verify --kds against a local KDS', () => {
  let server: http.Server;
  let base = '';
  const seen: string[] = [];
  beforeAll(async () => {
    const vcek = fs.readFileSync(OAK_VCEK);
    const chain = fs.readFileSync(V('google-go-sev-guest/verify/trust/ask_ark_milan.pem'));
    server = http.createServer((req, res) => {
      seen.push(req.url ?? '');
      if (req.url?.startsWith('/vcek/v1/Milan/a3fdc2c6') && req.url.endsWith('?blSPL=4&teeSPL=0&snpSPL=24&ucodeSPL=219')) res.end(vcek);
      else if (req.url === '/vcek/v1/Milan/cert_chain') res.end(chain);
      else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('verify --kds fetches the VCEK once and then works offline from the cache', async () => {
    const cache = path.join(tmp, 'cache');
    const r = await runCli(['snp', 'verify', '--report', OAK, '--kds', '--kds-url', base, '--cache-dir', cache, '--json'], T);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(seen.filter((u) => u.startsWith('/vcek/v1/Milan/a3')).length).toBe(1);
    const off = await runCli(['snp', 'verify', '--report', OAK, '--kds', '--offline', '--cache-dir', cache, '--json'], T);
    expect(off.code).toBe(0);
    expect(JSON.parse(off.stdout).checks.find((c: { id: string }) => c.id === 'vek-source').detail).toMatch(/KDS cache/);
    const miss = await runCli(
      ['snp', 'verify', '--report', V('derived/virtee_report_milan.bin'), '--product', 'Milan', '--kds', '--offline', '--cache-dir', cache],
      T,
    );
    expect(miss.code).toBe(1);
    expect(miss.stderr).toMatch(/^sevkit: offline: .* is not in the cache\n$/);
  });

  it('fetch vcek and ca write files; a 404 is one line and exit 1', async () => {
    const out = path.join(tmp, 'v.der');
    const r = await runCli(['snp', 'fetch', 'vcek', '--report', OAK, '--kds-url', base, '--cache-dir', path.join(tmp, 'c2'), '-o', out], T);
    expect(r.code).toBe(0);
    expect(fs.readFileSync(out).equals(fs.readFileSync(OAK_VCEK))).toBe(true);
    const ca = path.join(tmp, 'chain.pem');
    expect((await runCli(['snp', 'fetch', 'ca', '--product', 'Milan', '--kds-url', base, '--cache-dir', path.join(tmp, 'c2'), '-o', ca], T)).code).toBe(0);
    expect(fs.readFileSync(ca, 'utf8')).toMatch(/BEGIN CERTIFICATE/);
    const crl = await runCli(
      ['snp', 'fetch', 'crl', '--product', 'Genoa', '--kds-url', base, '--cache-dir', path.join(tmp, 'c2'), '-o', path.join(tmp, 'crl.der')],
      T,
    );
    expect(crl.code).toBe(1);
    expect(crl.stderr).toMatch(/^sevkit: .*\/vcek\/v1\/Genoa\/crl: KDS answered HTTP 404/);
    expect(fs.existsSync(path.join(tmp, 'crl.der'))).toBe(false);
    expect((await runCli(['snp', 'fetch', 'ca'], T)).code).toBe(2);
  });
});
