import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CERT_TABLE_GUIDS, certTableEntry, encodeCertTable, parseCertTable } from '../../lib/snp/certtable.js';
import { CertTableError, SnpKdsError } from '../../lib/snp/errors.js';
import { certChainUrl, crlUrl, KdsClient, vcekUrl } from '../../lib/snp/kds.js';
import { parseReport } from '../../lib/snp/report.js';
import { builtinRoots } from '../../lib/snp/roots.js';
import { makeTcb } from '../../lib/snp/tcb.js';
import { verifySnpReport } from '../../lib/snp/verify.js';
import { realVectors, snpFile } from './vectors.js';

const virtee = realVectors().find((v) => v.name === 'virtee_milan_v2')!;
const report = parseReport(virtee.report);

/** A local KDS stand-in serving the vendored certificates; scripted answers per path. */
let server: http.Server;
let base = '';
const hits: string[] = [];
const script = new Map<string, { status: number; body?: Buffer; headers?: Record<string, string> }[]>();
const files = new Map<string, Buffer>();

beforeAll(async () => {
  files.set(
    new URL(vcekUrl('Milan', report.chipId, report.reportedTcb, 'http://x')).pathname +
      new URL(vcekUrl('Milan', report.chipId, report.reportedTcb, 'http://x')).search,
    virtee.vek,
  );
  files.set('/vcek/v1/Milan/cert_chain', snpFile('google-go-sev-guest/verify/trust/ask_ark_milan.pem'));
  files.set('/vlek/v1/Milan/cert_chain', snpFile('google-go-sev-guest/verify/trust/ask_ark_milan_vlek.pem'));
  server = http.createServer((req, res) => {
    const url = req.url ?? '';
    hits.push(url);
    const next = script.get(url)?.shift();
    if (next) {
      res.writeHead(next.status, next.headers ?? {});
      res.end(next.body ?? '');
      return;
    }
    const body = files.get(url);
    if (body) {
      res.writeHead(200);
      res.end(body);
    } else {
      res.writeHead(404);
      res.end('not found');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function fakeTime() {
  let t = 1_000_000;
  const waits: number[] = [];
  return {
    waits,
    now: () => t,
    sleep: (ms: number) => {
      waits.push(ms);
      t += ms;
      return Promise.resolve();
    },
  };
}
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-snp-kds-'));

describe('KDS URLs', () => {
  it('Milan/Genoa: 64-byte hwid and four SPLs from REPORTED_TCB; Turin: 8-byte hwid and fmcSPL', () => {
    expect(vcekUrl('Milan', report.chipId, report.reportedTcb)).toBe(
      `https://kdsintf.amd.com/vcek/v1/Milan/${virtee.known.chip_id}?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115`,
    );
    const chip = Buffer.alloc(64);
    Buffer.from('1e550a8ee5cf9f4d', 'hex').copy(chip);
    expect(vcekUrl('Turin', chip, makeTcb('turin', { fmc: 1, bootloader: 2, tee: 3, snp: 4, microcode: 71 }))).toBe(
      'https://kdsintf.amd.com/vcek/v1/Turin/1e550a8ee5cf9f4d?fmcSPL=1&blSPL=2&teeSPL=3&snpSPL=4&ucodeSPL=71',
    );
    expect(certChainUrl('Genoa', 'vlek')).toBe('https://kdsintf.amd.com/vlek/v1/Genoa/cert_chain');
    expect(crlUrl('Turin')).toBe('https://kdsintf.amd.com/vcek/v1/Turin/crl');
    expect(() => vcekUrl('Milan', Buffer.alloc(64), report.reportedTcb)).toThrow(/masked/);
  });
});

describe('KDS client against a local HTTP server', () => {
  it('fetches a VCEK once, then answers from the disk cache, also offline; a report verifies with it', async () => {
    const dir = tmp();
    try {
      const t = fakeTime();
      const c = new KdsClient({ baseUrl: base, cacheDir: dir, now: t.now, sleep: t.sleep });
      const before = hits.length;
      const a = await c.vcek('Milan', report.chipId, report.reportedTcb);
      expect(a.source).toBe('kds');
      expect(a.der.equals(virtee.vek)).toBe(true);
      const b = await c.vcek('Milan', report.chipId, report.reportedTcb);
      expect(b.source).toBe('cache');
      expect(hits.length - before).toBe(1);
      const off = new KdsClient({ baseUrl: base, cacheDir: dir, offline: true });
      const o = await off.vcek('Milan', report.chipId, report.reportedTcb);
      expect(o.source).toBe('cache');
      expect(fs.existsSync(path.join(dir, 'vcek', 'Milan', virtee.known.chip_id, 'bl3_tee0_snp8_ucode115.der'))).toBe(true);
      const chain = await c.certChain('Milan');
      expect([chain.value.intermediate.subjectCn, chain.value.ark.subjectCn]).toEqual(['SEV-Milan', 'ARK-Milan']);
      const r = verifySnpReport({
        report: virtee.report,
        vek: o.value,
        intermediate: chain.value.intermediate,
        ark: chain.value.ark,
        at: new Date('2026-12-06T00:00:00Z'),
      });
      expect(r.failed).toEqual([]);
      const vlek = await c.certChain('Milan', 'vlek');
      expect(vlek.value.intermediate.subjectCn).toBe('SEV-VLEK-Milan');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('offline with an empty cache fails with a typed error and sends nothing', async () => {
    const before = hits.length;
    const c = new KdsClient({ baseUrl: base, cacheDir: tmp(), offline: true });
    await expect(c.vcek('Milan', report.chipId, report.reportedTcb)).rejects.toMatchObject({ code: 'ERR_SNP_KDS_OFFLINE' });
    expect(hits.length).toBe(before);
  });

  it('asks for the same URL at most once per 10 s', async () => {
    const t = fakeTime();
    const c = new KdsClient({ baseUrl: base, now: t.now, sleep: t.sleep }); // no cache: every call goes to KDS
    await c.certChain('Milan');
    await c.certChain('Milan');
    expect(t.waits).toEqual([10_000]);
  });

  it('backs off on 429, honouring Retry-After, then succeeds', async () => {
    const t = fakeTime();
    script.set('/vcek/v1/Genoa/cert_chain', [
      { status: 429, headers: { 'Retry-After': '3' } },
      { status: 429 },
      { status: 200, body: snpFile('google-go-sev-guest/verify/trust/ask_ark_genoa.pem') },
    ]);
    const c = new KdsClient({ baseUrl: base, now: t.now, sleep: t.sleep });
    const r = await c.certChain('Genoa');
    expect(r.value.intermediate.subjectCn).toBe('SEV-Genoa');
    // 3 s from Retry-After; then the 10 s same-request gap dominates the wait; then the 10 s default backoff.
    expect(t.waits[0]).toBe(3_000);
    expect(t.waits.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(3_000 + 10_000);
  });

  it('gives up on endless 429 with a throttled error within the deadline, and does not retry a 404', async () => {
    const t = fakeTime();
    script.set(
      '/vcek/v1/Turin/cert_chain',
      Array.from({ length: 10 }, () => ({ status: 429 })),
    );
    const c = new KdsClient({ baseUrl: base, now: t.now, sleep: t.sleep, totalDeadlineMs: 60_000 });
    await expect(c.certChain('Turin')).rejects.toMatchObject({ code: 'ERR_SNP_KDS_THROTTLED', status: 429 });
    const before = hits.length;
    const e = await c.crl('Milan').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SnpKdsError);
    expect((e as SnpKdsError).status).toBe(404);
    expect(hits.length - before).toBe(1);
  });

  it('a body that is not a certificate is a typed error and is not cached', async () => {
    const dir = tmp();
    try {
      script.set('/vcek/v1/Milan/cert_chain', [{ status: 200, body: Buffer.from('<html>maintenance</html>') }]);
      const c = new KdsClient({ baseUrl: base, cacheDir: dir, ...fakeTime() });
      await expect(c.certChain('Milan')).rejects.toMatchObject({ code: 'ERR_SNP_CERT_FORMAT' });
      expect(fs.existsSync(path.join(dir, 'vcek', 'Milan', 'cert_chain.pem'))).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('extended-report certificate table', () => {
  const table = snpFile('derived/turin_cert_table_constructed.bin');
  it('parses the constructed Turin table (VCEK, ASK, ARK) and its ASK/ARK are the built-in Turin ones', () => {
    const t = parseCertTable(table);
    expect(t.map((e) => e.kind)).toEqual(['VCEK', 'ASK', 'ARK']);
    expect(t[0]!.guid).toBe(CERT_TABLE_GUIDS.VCEK);
    const roots = builtinRoots('Turin');
    expect(certTableEntry(t, 'ASK')!.equals(roots.ask.der)).toBe(true);
    expect(certTableEntry(t, 'ARK')!.equals(roots.ark.der)).toBe(true);
    expect(encodeCertTable(t).equals(table)).toBe(true);
  });
  it('an empty or all-zero buffer is an empty table', () => {
    expect(parseCertTable(Buffer.alloc(0))).toEqual([]);
    expect(parseCertTable(Buffer.alloc(24))).toEqual([]);
  });
  it('rejects a missing terminator, offsets into the header or past the end, duplicate GUIDs', () => {
    expect(() => parseCertTable(table.subarray(0, 30))).toThrow(CertTableError);
    const intoHeader = Buffer.from(table);
    intoHeader.writeUInt32LE(8, 16);
    expect(() => parseCertTable(intoHeader)).toThrow(/points into the header/);
    const past = Buffer.from(table);
    past.writeUInt32LE(0xffffff, 20);
    expect(() => parseCertTable(past)).toThrow(/runs past/);
    const dup = Buffer.from(table);
    table.copy(dup, 24, 0, 16);
    expect(() => parseCertTable(dup)).toThrow(/twice/);
  });
});
