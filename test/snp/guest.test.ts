/**
 * The guest side through the unchanged addon: SNP_GET_REPORT / EXT_REPORT /
 * DERIVED_KEY on /dev/sev-guest, answered by the suite's simulator through the
 * LD_PRELOAD shim. The report must verify with the VCEK the host handed out
 * (ECDSA P-384 over bytes 0..0x29F, R‖S little-endian), and that VCEK must
 * chain to the simulator's TEST ARK; inputs out of range are typed errors.
 */
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { getNativeBinding } from '../../lib/binding.js';
import {
  SnpGuestError,
  SnpGuestInputError,
  encodeDerivedKeyRequest,
  getDerivedKey,
  getExtReport,
  getReport,
  requestReport,
  trimCertTable,
} from '../../lib/snp/guest.js';
import { CertTableError } from '../../lib/snp/errors.js';
import { parseReport } from '../../lib/snp/report.js';
import { parseCertTable } from '../../lib/snp/certtable.js';

const simState = process.env.SEVKIT_SIM_STATE;
const skip =
  process.env.SEVKIT_HW === '1'
    ? 'SEVKIT_HW=1: no SNP guest here'
    : !simState || !process.env.SEVKIT_SIM_SOCKET
      ? `no simulator (${process.env.SEVKIT_SIM_UNAVAILABLE ?? 'not started'})`
      : undefined;

const VCEK_GUID = '63da758d-e664-4564-adc5-f4b93be8accd';
const ARK_GUID = 'c0b406a4-a803-4952-9743-3fb6014cd0ae';
const ASK_GUID = '4ab7b379-bbac-4fe4-a02f-05aef327c782';

/** The independent check: node:crypto over the signed region, R and S reversed from little-endian. */
function signatureVerifies(report: Buffer, vcek: crypto.X509Certificate): boolean {
  const r = Buffer.from(report.subarray(0x2a0, 0x2a0 + 48)).reverse();
  const s = Buffer.from(report.subarray(0x2e8, 0x2e8 + 48)).reverse();
  return crypto.verify('sha384', report.subarray(0, 0x2a0), { key: vcek.publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.concat([r, s]));
}

const tmp: string[] = [];
afterAll(() => {
  for (const d of tmp) fs.rmSync(d, { recursive: true, force: true });
});

describe.skipIf(skip)('SNP guest requests through the addon and the shim', () => {
  const nonce = crypto.randomBytes(64);

  it('SNP_GET_EXT_REPORT: REPORT_DATA and VMPL echoed, signed by the VCEK in the cert table, which chains to the TEST ARK', async () => {
    const { report, certTable } = await getExtReport({ reportData: nonce, vmpl: 1 });
    expect(report).toHaveLength(1184);
    const parsed = parseReport(report);
    expect(parsed.reportData.equals(nonce)).toBe(true);
    expect(parsed.vmpl).toBe(1);
    expect(parsed.keyInfo.signingKey).toBe('VCEK');
    // The table is bigger than one page: the addon's first buffer was too small and the INVALID_LEN retry ran.
    expect(certTable.length).toBeGreaterThan(4096);
    const entries = parseCertTable(certTable);
    expect(entries.map((e) => e.guid).sort()).toEqual([ARK_GUID, ASK_GUID, VCEK_GUID].sort());
    const cert = (g: string) => new crypto.X509Certificate(entries.find((e) => e.guid === g)!.data);
    const [ark, ask, vcek] = [cert(ARK_GUID), cert(ASK_GUID), cert(VCEK_GUID)];
    expect(signatureVerifies(report, vcek)).toBe(true);
    expect(vcek.verify(ask.publicKey)).toBe(true);
    expect(ask.verify(ark.publicKey)).toBe(true);
    expect(ark.subject).toMatch(/TEST/);
    // The ARK is the simulator's own TEST root key.
    const arkKey = crypto.createPublicKey(crypto.createPrivateKey(fs.readFileSync(path.join(simState!, 'ark.key.pem'))));
    expect(ark.publicKey.export({ type: 'spki', format: 'der' }).equals(arkKey.export({ type: 'spki', format: 'der' }))).toBe(true);
    // One flipped byte in the signed region and it no longer verifies.
    const bad = Buffer.from(report);
    bad[0x50] ^= 1;
    expect(signatureVerifies(bad, vcek)).toBe(false);
  });

  it('SNP_GET_REPORT: a plain report with the same chip, for every VMPL 0..3', async () => {
    const ext = await getExtReport({ reportData: nonce });
    const vcek = new crypto.X509Certificate(parseCertTable(ext.certTable).find((e) => e.guid === VCEK_GUID)!.data);
    for (const vmpl of [0, 1, 2, 3]) {
      const report = await getReport({ reportData: nonce, vmpl });
      expect(report.readUInt32LE(0x30)).toBe(vmpl);
      expect(signatureVerifies(report, vcek)).toBe(true);
    }
  });

  it('requestReport falls back to the ioctl when there is no configfs-tsm tree', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-notsm-'));
    tmp.push(root);
    const r = await requestReport({ reportData: nonce }, { tsm: { root: path.join(root, 'absent') } });
    expect(r.source).toBe('ioctl');
    expect(parseReport(r.report).reportData.equals(nonce)).toBe(true);
  });

  it('bad inputs are typed errors before any I/O', async () => {
    await expect(getReport({ reportData: Buffer.alloc(63) })).rejects.toMatchObject({
      name: 'SnpGuestInputError',
      code: 'ERR_SNP_GUEST_INPUT',
      field: 'REPORT_DATA',
    });
    await expect(getExtReport({ reportData: Buffer.alloc(65) })).rejects.toBeInstanceOf(SnpGuestInputError);
    await expect(getReport({ vmpl: 4 })).rejects.toMatchObject({ code: 'ERR_SNP_GUEST_INPUT', field: 'VMPL' });
    await expect(getReport({ vmpl: 1.5 })).rejects.toMatchObject({ field: 'VMPL' });
    await expect(getDerivedKey({ vmpl: 7 })).rejects.toMatchObject({ field: 'VMPL' });
    // The addon checks on its own too (a caller that skips lib/snp).
    const b = getNativeBinding();
    expect(() => b.snpGuestReport('/dev/sev-guest', Buffer.alloc(32), 0)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }) as Error);
    expect(() => b.snpGuestExtReport('/dev/sev-guest', Buffer.alloc(64), 4)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }) as Error);
    expect(() => b.snpGuestDerivedKey('/dev/sev-guest', Buffer.alloc(31))).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }) as Error);
  });

  it('device failures are SnpGuestErrors with one line; a FIFO is refused without blocking', async () => {
    const e = await getReport({}, { device: '/nonexistent/sev-guest' }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SnpGuestError);
    expect(e).toMatchObject({ sysCode: 'ENOENT', syscall: 'open' });
    expect((e as Error).message).toMatch(/^\/nonexistent\/sev-guest: open failed: ENOENT, no SNP guest device/);
    expect((e as Error).message).not.toMatch(/\n/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-fifo-'));
    tmp.push(dir);
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    await expect(getReport({}, { device: fifo })).rejects.toMatchObject({
      sysCode: 'ENODEV',
      message: expect.stringMatching(/not a character device \(a FIFO\)/) as string,
    });
    // A character device that is no SNP guest device: the ioctl is ENOTTY, named.
    await expect(getReport({}, { device: '/dev/null' })).rejects.toMatchObject({ sysCode: 'ENOTTY', command: 'SNP_GET_REPORT' });
  });

  it('SNP_GET_DERIVED_KEY: 32 bytes, stable for one request, different per selector, VMPL and root key', async () => {
    const k1 = await getDerivedKey({ fields: { measurement: true, policy: true } });
    const k2 = await getDerivedKey({ fields: { measurement: true, policy: true } });
    expect(k1).toHaveLength(32);
    expect(k1.equals(k2)).toBe(true);
    const others = await Promise.all([
      getDerivedKey({ fields: { measurement: true } }),
      getDerivedKey({ fields: { measurement: true, policy: true }, vmpl: 1 }),
      getDerivedKey({ fields: { measurement: true, policy: true }, rootKey: 'vmrk' }),
    ]);
    for (const k of others) expect(k.equals(k1)).toBe(false);
    // A GUEST_SVN above the guest's own is the firmware's INVALID_PARAM, in the response status.
    await expect(getDerivedKey({ guestSvn: 5 })).rejects.toMatchObject({
      code: 'ERR_SNP_GUEST',
      sysCode: 'EIO',
      fwStatusName: 'SEV_RET_INVALID_PARAM',
      command: 'SNP_GET_DERIVED_KEY',
    });
  });

  it('encodes the derived-key request at the kernel offsets', () => {
    const b = encodeDerivedKeyRequest({ rootKey: 'vmrk', fields: { policy: true, tcbVersion: true }, vmpl: 2, guestSvn: 7, tcbVersion: 0x0102030405060708n });
    expect(b.readUInt32LE(0)).toBe(1);
    expect(b.readBigUInt64LE(8)).toBe(0x21n);
    expect(b.readUInt32LE(16)).toBe(2);
    expect(b.readUInt32LE(20)).toBe(7);
    expect(b.readBigUInt64LE(24)).toBe(0x0102030405060708n);
    expect(() => encodeDerivedKeyRequest({ tcbVersion: Buffer.alloc(7) })).toThrow(SnpGuestInputError);
  });

  it('64 requests in flight at once all complete, each with its own REPORT_DATA', async () => {
    const datas = Array.from({ length: 64 }, () => crypto.randomBytes(64));
    const reports = await Promise.all(datas.map((d) => getReport({ reportData: d })));
    reports.forEach((r, i) => expect(r.subarray(0x50, 0x90).equals(datas[i]!)).toBe(true));
  }, 120_000);
});

describe('certificate table extent', () => {
  it('an all-zero buffer is an empty table; an entry outside the buffer is a CertTableError', () => {
    expect(trimCertTable(Buffer.alloc(4096))).toHaveLength(0);
    const t = Buffer.alloc(4096);
    t.fill(1, 0, 16);
    t.writeUInt32LE(48, 16);
    t.writeUInt32LE(5000, 20);
    expect(() => trimCertTable(t)).toThrow(CertTableError);
    t.writeUInt32LE(100, 20);
    expect(trimCertTable(t)).toHaveLength(148);
    t.writeUInt32LE(10, 16); // inside the header
    expect(() => trimCertTable(t)).toThrow(CertTableError);
  });
});
