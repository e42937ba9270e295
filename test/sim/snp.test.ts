/**
 * The simulator's SNP guest side, in-process: reports per product (Milan,
 * Genoa, Turin layouts), the TEST X.509 chain with AMD's extensions, the
 * driver model (argument checks, the certificate-buffer protocol, the VMPCK
 * wipe), the configfs-tsm tree, and the loopback KDS stand-in over HTTP.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate, CertificateList } from '@peculiar/asn1-x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestReport } from '../../lib/snp/guest.js';
import { TsmError, tsmReport, type TsmIo } from '../../lib/snp/tsm.js';
import { parseReport } from '../../lib/snp/report.js';
import { parseCertTable } from '../../lib/snp/certtable.js';
import { encodeTcb, makeTcb } from '../../lib/snp/tcb.js';
import type { SnpProduct } from '../../lib/snp/product.js';
import { armFault } from '../../lib/sim/faults.js';
import { SimSnpGuest } from '../../lib/sim/snp/guest.js';
import { GuestIoctl, SimSnpGuestDriver } from '../../lib/sim/snp/driver.js';
import { writeSnpGuestConfig, SnpGuestConfigError } from '../../lib/sim/snp/config.js';
import { SimTsmTree, simTsmRoot } from '../../lib/sim/snp/tsm-tree.js';
import { SimKdsServer } from '../../lib/sim/snp/kds-server.js';
import { AmdOid } from '../../lib/sim/snp/certs.js';
import type { GuestIoctlRequest } from '../../lib/sim/snp/protocol.js';
import { cleanupDirs, freshPlatform } from './helpers.js';
import type { SimPlatform } from '../../lib/sim/platform.js';

afterAll(cleanupDirs);

function verifies(report: Buffer, certDer: Buffer): boolean {
  const key = new crypto.X509Certificate(certDer).publicKey;
  const sig = Buffer.concat([Buffer.from(report.subarray(0x2a0, 0x2d0)).reverse(), Buffer.from(report.subarray(0x2e8, 0x318)).reverse()]);
  return crypto.verify('sha384', report.subarray(0, 0x2a0), { key, dsaEncoding: 'ieee-p1363' }, sig);
}

/** AMD extension values by OID: the DER inside each extnValue. */
function amdExtensions(der: Buffer): Map<string, Buffer> {
  const c = AsnConvert.parse(der, Certificate);
  return new Map((c.tbsCertificate.extensions ?? []).map((e) => [e.extnID, Buffer.from(e.extnValue.buffer)]));
}

function derInt(v: number): string {
  return Buffer.from(v < 0x80 ? [2, 1, v] : [2, 2, 0, v]).toString('hex');
}

let platform: SimPlatform;
let guest: SimSnpGuest;

beforeAll(() => {
  platform = freshPlatform();
  guest = new SimSnpGuest(platform);
}, 120_000);

describe('simulated reports per product', () => {
  const cases: [SnpProduct, number, number, number][] = [
    // product, report version, CPUID family, hwID length
    ['Milan', 3, 0x19, 64],
    ['Genoa', 5, 0x19, 64],
    ['Turin', 5, 0x1a, 8],
  ];
  for (const [product, version, family, hwidLen] of cases) {
    it(`${product}: version ${version}, CPUID family 0x${family.toString(16)}, ${hwidLen}-byte hwID, signed by a VCEK whose extensions match REPORTED_TCB`, () => {
      writeSnpGuestConfig(platform.stateDir, { product, policy: '0x30000' });
      const data = crypto.randomBytes(64);
      const report = guest.report(data, 2);
      const r = parseReport(report);
      expect(r.version).toBe(version);
      expect(r.cpuid?.family).toBe(family);
      expect(r.vmpl).toBe(2);
      expect(r.reportData.equals(data)).toBe(true);
      expect(r.reportedTcb.layout).toBe(product === 'Turin' ? 'turin' : 'legacy');
      expect(r.chipId.subarray(hwidLen).every((b) => b === 0)).toBe(true);
      expect(r.chipId.subarray(0, hwidLen).some((b) => b !== 0)).toBe(true);
      const chain = guest.chain(product);
      expect(verifies(report, chain.vcek)).toBe(true);
      const ask = new crypto.X509Certificate(chain.ask);
      const ark = new crypto.X509Certificate(chain.ark);
      expect(new crypto.X509Certificate(chain.vcek).verify(ask.publicKey)).toBe(true);
      expect(ask.verify(ark.publicKey) && ark.verify(ark.publicKey)).toBe(true);
      expect(ark.subject).toContain(`CN=ARK-${product}`);
      expect(new crypto.X509Certificate(chain.vcek).serialNumber).toBe('0');
      const ext = amdExtensions(chain.vcek);
      expect(ext.get(AmdOid.hwID)!.equals(r.chipId.subarray(0, hwidLen))).toBe(true);
      expect(ext.get(AmdOid.blSPL)!.toString('hex')).toBe(derInt(r.reportedTcb.bootloader));
      expect(ext.get(AmdOid.snpSPL)!.toString('hex')).toBe(derInt(r.reportedTcb.snp));
      expect(ext.get(AmdOid.ucodeSPL)!.toString('hex')).toBe(derInt(r.reportedTcb.microcode));
      expect(ext.get(AmdOid.structVersion)!.toString('hex')).toBe(derInt(product === 'Turin' ? 1 : 0));
      expect(ext.has(AmdOid.fmcSPL)).toBe(product === 'Turin');
      expect(ext.has(AmdOid.spl4)).toBe(product !== 'Turin');
    });
  }

  it('policy and measurement come from the configured launch; a bad config is a typed error', () => {
    const measurement = crypto.randomBytes(48).toString('hex');
    writeSnpGuestConfig(platform.stateDir, { product: 'Genoa', measurement, policy: '0x70000', hostData: 'ab'.repeat(32) });
    const r = parseReport(guest.report(Buffer.alloc(64), 0));
    expect(r.measurement.toString('hex')).toBe(measurement);
    expect(r.policy.migrateMa).toBe(true);
    expect(r.hostData.equals(Buffer.alloc(32, 0xab))).toBe(true);
    expect(() => writeSnpGuestConfig(platform.stateDir, { measurement: 'abcd' })).toThrow(SnpGuestConfigError);
    fs.writeFileSync(path.join(platform.stateDir, 'snp-guest.json'), '{"product":"Venice"}');
    expect(() => guest.report(Buffer.alloc(64), 0)).toThrow(SnpGuestConfigError);
    writeSnpGuestConfig(platform.stateDir, {});
  });

  it('is deterministic: the same seed gives the same VCEK DER and report bytes', () => {
    const other = new SimSnpGuest(platform);
    expect(other.chain('Genoa').vcek.equals(guest.chain('Genoa').vcek)).toBe(true);
    expect(other.report(Buffer.alloc(64, 7), 0).equals(guest.report(Buffer.alloc(64, 7), 0))).toBe(true);
  });

  it('a VLEK configuration signs with the VLEK (no hwID, csp_id) under the TEST ASVK', () => {
    writeSnpGuestConfig(platform.stateDir, { product: 'Genoa', signingKey: 'VLEK' });
    try {
      const report = guest.report(Buffer.alloc(64, 1), 0);
      expect(parseReport(report).keyInfo.signingKey).toBe('VLEK');
      const c = guest.chain('Genoa', undefined, true);
      expect(verifies(report, c.vlek!)).toBe(true);
      expect(verifies(report, c.vcek)).toBe(false);
      const ext = amdExtensions(c.vlek!);
      expect(ext.has(AmdOid.hwID)).toBe(false);
      expect(ext.get(AmdOid.cspId)!.subarray(2).toString()).toMatch(/sevkit/);
      expect(new crypto.X509Certificate(c.vlek!).verify(new crypto.X509Certificate(c.asvk!).publicKey)).toBe(true);
      const entries = parseCertTable(guest.certTable());
      expect(entries.map((e) => e.guid)).toContain('a8074bc2-a25a-483e-aae6-39c045a0b8a1');
    } finally {
      writeSnpGuestConfig(platform.stateDir, {});
    }
  }, 240_000);
});

describe('the simulated sev-guest driver', () => {
  let driver: SimSnpGuestDriver;
  beforeAll(() => {
    driver = new SimSnpGuestDriver(guest);
  });
  const reportReq = (vmpl = 0) => {
    const b = Buffer.alloc(96);
    b.fill(9, 0, 64);
    b.writeUInt32LE(vmpl, 64);
    return b;
  };
  const ext = (len: number) => {
    const b = Buffer.alloc(112);
    reportReq().copy(b);
    b.writeBigUInt64LE(0x1000n, 96);
    b.writeUInt32LE(len, 104);
    return b;
  };
  const call = (request: number, req: GuestIoctlRequest['req'], more: Partial<GuestIoctlRequest> = {}) =>
    driver.ioctl({ msgVersion: 1, request, req, respNull: false, tag: 'drv', ...more });

  it('checks arguments as the driver does', () => {
    expect(call(0xc0205399, reportReq()).errno).toBe(25); // ENOTTY: no such ioctl
    expect(call(GuestIoctl.SNP_GET_REPORT, reportReq(), { msgVersion: 0 }).errno).toBe(22);
    expect(call(GuestIoctl.SNP_GET_REPORT, null)).toMatchObject({ errno: 22, fwError: 0xff });
    expect(call(GuestIoctl.SNP_GET_REPORT, reportReq(), { respNull: true }).errno).toBe(22);
    expect(call(GuestIoctl.SNP_GET_REPORT, 'fault').errno).toBe(14);
    expect(call(GuestIoctl.SNP_GET_EXT_REPORT, ext(100)).errno).toBe(22); // not a page multiple
    expect(call(GuestIoctl.SNP_GET_EXT_REPORT, ext(0x5000)).errno).toBe(22); // over 16 KiB
  });

  it('VMPL above 3 or reserved bytes set: a successful ioctl whose response says INVALID_PARAM', () => {
    const r = call(GuestIoctl.SNP_GET_REPORT, reportReq(4));
    expect(r.errno).toBe(0);
    expect(r.resp.readUInt32LE(0)).toBe(0x16);
    const req = reportReq();
    req[70] = 1;
    expect(call(GuestIoctl.SNP_GET_REPORT, req).resp.readUInt32LE(0)).toBe(0x16);
  });

  it('a too-small certificate buffer: EIO, VMM INVALID_LEN, and the size needed; then the table', () => {
    const small = call(GuestIoctl.SNP_GET_EXT_REPORT, ext(4096));
    expect(small).toMatchObject({ errno: 5, vmmError: 1, fwError: 0 });
    expect(small.certsLenOut % 4096).toBe(0);
    expect(small.certsLenOut).toBeGreaterThan(4096);
    const ok = call(GuestIoctl.SNP_GET_EXT_REPORT, ext(small.certsLenOut));
    expect(ok.errno).toBe(0);
    expect(ok.certs.equals(guest.certTable())).toBe(true);
    // A host that supplies no certificates: an empty table fits any buffer.
    writeSnpGuestConfig(platform.stateDir, { certTable: false });
    try {
      const none = call(GuestIoctl.SNP_GET_EXT_REPORT, ext(4096));
      expect(none.errno).toBe(0);
      expect(none.certs.every((b) => b === 0)).toBe(true);
    } finally {
      writeSnpGuestConfig(platform.stateDir, {});
    }
  });

  it("a firmware error wipes that guest's VMPCK: every later request is ENOTTY; other guests go on", () => {
    armFault(platform.stateDir, { cmd: 'SNP_GET_REPORT', fwStatus: 'INVALID_GUEST', tag: 'victim' });
    const hit = call(GuestIoctl.SNP_GET_REPORT, reportReq(), { tag: 'victim' });
    expect(hit.errno).toBe(5);
    expect(hit.fwError).not.toBe(0);
    expect(call(GuestIoctl.SNP_GET_REPORT, reportReq(), { tag: 'victim' }).errno).toBe(25);
    expect(call(GuestIoctl.SNP_GET_DERIVED_KEY, Buffer.alloc(32), { tag: 'victim' }).errno).toBe(25);
    expect(call(GuestIoctl.SNP_GET_REPORT, reportReq(), { tag: 'bystander' }).errno).toBe(0);
  });
});

describe('the configfs-tsm tree', () => {
  let tree: SimTsmTree;
  beforeAll(() => {
    tree = new SimTsmTree(simTsmRoot(platform.stateDir), guest);
  });

  it('gives the report for inblob/privlevel and the cert table as auxblob; requestReport prefers it', async () => {
    const data = crypto.randomBytes(64);
    const r = await requestReport({ reportData: data, vmpl: 3 }, { tsm: { root: tree.root, io: tree } });
    expect(r.source).toBe('tsm');
    const p = parseReport(r.report);
    expect(p.reportData.equals(data)).toBe(true);
    expect(p.vmpl).toBe(3);
    expect(verifies(r.report, guest.chain().vcek)).toBe(true);
    expect(parseCertTable(r.certTable)).toHaveLength(3);
    expect(fs.readdirSync(tree.root)).toEqual([]); // the entry was removed
  });

  it('refuses a VMPL below privlevel_floor, a foreign provider, and a racing writer', async () => {
    writeSnpGuestConfig(platform.stateDir, { vmplFloor: 2 });
    try {
      await expect(tsmReport({ reportData: Buffer.alloc(64), vmpl: 1 }, { root: tree.root, io: tree })).rejects.toMatchObject({
        code: 'ERR_SNP_TSM',
        field: 'privlevel',
      });
    } finally {
      writeSnpGuestConfig(platform.stateDir, {});
    }
    const foreign: TsmIo = {
      ...bind(tree),
      readFile: (p, max) => (p.endsWith('provider') ? Promise.resolve(Buffer.from('tdx_guest\n')) : tree.readFile(p, max)),
    };
    await expect(tsmReport({ reportData: Buffer.alloc(64), vmpl: 0 }, { root: tree.root, io: foreign })).rejects.toMatchObject({ field: 'provider' });
    // Someone else writes inblob between our write and our read: the generation tells.
    const racing: TsmIo = {
      ...bind(tree),
      readFile: async (p, max) => {
        if (p.endsWith('outblob')) await tree.writeFile(path.join(path.dirname(p), 'inblob'), Buffer.alloc(64, 1));
        return tree.readFile(p, max);
      },
    };
    const e = await tsmReport({ reportData: Buffer.alloc(64), vmpl: 0 }, { root: tree.root, io: racing }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TsmError);
    expect((e as TsmError).field).toBe('generation');
    expect(fs.readdirSync(tree.root)).toEqual([]);
  });

  it('plays configfs: inblob must be 64 bytes at read time, read-only attributes refuse writes', async () => {
    const dir = path.join(tree.root, 'manual');
    await tree.mkdir(dir);
    try {
      await tree.writeFile(path.join(dir, 'inblob'), Buffer.alloc(32));
      await expect(tree.readFile(path.join(dir, 'outblob'), 4096)).rejects.toMatchObject({ code: 'EINVAL' });
      await expect(tree.writeFile(path.join(dir, 'provider'), Buffer.from('x'))).rejects.toMatchObject({ code: 'EACCES' });
      await expect(tree.writeFile(path.join(dir, 'privlevel'), Buffer.from('4'))).rejects.toMatchObject({ code: 'EINVAL' });
      expect(fs.readFileSync(path.join(dir, 'generation'), 'utf8')).toBe('1\n');
    } finally {
      await tree.rmdir(dir);
    }
  });
});

function bind(t: SimTsmTree): TsmIo {
  return {
    isDir: (p) => t.isDir(p),
    mkdir: (p) => t.mkdir(p),
    rmdir: (p) => t.rmdir(p),
    readFile: (p, m) => t.readFile(p, m),
    writeFile: (p, d) => t.writeFile(p, d),
  };
}

describe('the loopback KDS stand-in', () => {
  let kds: SimKdsServer;
  let clock = 1_000_000;
  beforeAll(async () => {
    kds = await SimKdsServer.start(guest, { throttle: true, now: () => clock });
  });
  afterAll(async () => {
    await kds.close();
  });
  const get = async (p: string) => {
    const res = await fetch(kds.url + p, { signal: AbortSignal.timeout(60_000) });
    return { status: res.status, body: Buffer.from(await res.arrayBuffer()), type: res.headers.get('content-type') };
  };

  it("serves the VCEK for the report's hwid and REPORTED_TCB (Turin: 8-byte hwid and fmcSPL), and 404s another chip", async () => {
    for (const product of ['Genoa', 'Turin'] as const) {
      writeSnpGuestConfig(platform.stateDir, { product });
      const r = parseReport(guest.report(Buffer.alloc(64), 0));
      const t = r.reportedTcb;
      const hwid = r.chipId
        .subarray(0, product === 'Turin' ? 8 : 64)
        .toString('hex')
        .toUpperCase();
      const q = `blSPL=${String(t.bootloader).padStart(2, '0')}&teeSPL=${t.tee}&snpSPL=${t.snp}&ucodeSPL=${t.microcode}${product === 'Turin' ? `&fmcSPL=${t.fmc}` : ''}`;
      const res = await get(`/vcek/v1/${product}/${hwid}?${q}`);
      expect(res.status).toBe(200);
      expect(res.body.equals(guest.chain(product).vcek)).toBe(true);
      expect(verifies(guest.report(Buffer.alloc(64), 0), res.body)).toBe(true);
      expect((await get(`/vcek/v1/${product}/${'00'.repeat(product === 'Turin' ? 8 : 64)}?${q}`)).status).toBe(404);
    }
    writeSnpGuestConfig(platform.stateDir, {});
    const full = guest.hwid('Genoa').toString('hex'); // 64 bytes: wrong length for Turin
    expect((await get(`/vcek/v1/Turin/${full}?blSPL=1&teeSPL=0&snpSPL=1&ucodeSPL=1&fmcSPL=0`)).status).toBe(404);
    expect((await get(`/vcek/v1/Genoa/${full}?blSPL=1&teeSPL=0&snpSPL=1`)).status).toBe(400);
    expect((await get(`/vcek/v1/Genoa/${full}?blSPL=1&teeSPL=0&snpSPL=1&ucodeSPL=1&x=1`)).status).toBe(400);
    expect((await get(`/vcek/v1/Venice/cert_chain`)).status).toBe(404);
  });

  it('a VCEK for another TCB carries that TCB', async () => {
    const hwid = guest.hwid('Genoa').toString('hex');
    const res = await get(`/vcek/v1/Genoa/${hwid}?blSPL=9&teeSPL=0&snpSPL=22&ucodeSPL=217`);
    expect(res.status).toBe(200);
    const ext = amdExtensions(res.body);
    expect(ext.get(AmdOid.snpSPL)!.toString('hex')).toBe(derInt(22));
    expect(ext.get(AmdOid.ucodeSPL)!.toString('hex')).toBe('020200d9');
    expect(encodeTcb(makeTcb('legacy', { bootloader: 9, tee: 0, snp: 22, microcode: 217 })).toString('hex')).toBe('09000000000016d9');
  });

  it('cert_chain is PEM, ASK first then ARK; the CRL is signed by the ARK', async () => {
    const res = await get('/vcek/v1/Genoa/cert_chain');
    expect(res.status).toBe(200);
    const pems = res.body.toString().match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g)!;
    expect(pems).toHaveLength(2);
    const [ask, ark] = pems.map((p) => new crypto.X509Certificate(p));
    expect(ask!.subject).toContain('CN=SEV-Genoa');
    expect(ark!.subject).toContain('CN=ARK-Genoa');
    const crl = await get('/vcek/v1/Genoa/crl');
    expect(crl.status).toBe(200);
    const list = AsnConvert.parse(crl.body, CertificateList);
    const tbs = Buffer.from(AsnConvert.serialize(list.tbsCertList));
    const ok = crypto.verify(
      'sha384',
      tbs,
      { key: ark!.publicKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 },
      Buffer.from(list.signature),
    );
    expect(ok).toBe(true);
  });

  it('throttles: the same request within 10 s is 429, after the window it is served again', async () => {
    const p = '/vcek/v1/Milan/cert_chain';
    expect((await get(p)).status).toBe(200);
    clock += 9_000;
    expect((await get(p)).status).toBe(429);
    expect((await get('/vcek/v1/Milan/crl')).status).toBe(200); // another request is not throttled
    clock += 10_001;
    expect((await get(p)).status).toBe(200);
    expect(kds.hits.filter((h) => h.url === p).map((h) => h.status)).toEqual([200, 429, 200]);
  });
});
