/**
 * Where the simulated firmware and driver must refuse what the real ccp
 * driver and PSP firmware refuse, and accept what they accept (issue 13):
 * PEK_CERT_IMPORT's new PDH, guest init on an UNINIT platform, the implicit
 * INIT retry, the SNP ioctls' argument order, GET_ID2's allocation limit,
 * 6.16's PDH export order, LAUNCH_SECRET lengths, GODH coordinates and
 * LAUNCH_MEASURE below API 0.17.
 */
import crypto from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { SimFirmwareError, guestOp } from '../../lib/sim/guests.js';
import { Usage, Algo } from '../../lib/certs/constants.js';
import { createSevCert, signSevCert, encodeSevCert } from '../../lib/certs/sev-cert.js';
import { verifySevLink } from '../../lib/certs/verify.js';
import { decodeSevCert } from '../../lib/certs/sev-cert.js';
import { createSession } from '../../lib/launch/session.js';
import { buildSecret } from '../../lib/launch/secret.js';
import { ADDR_A, ADDR_B, Cmd, Errno, Ret, addrLen, cleanupDirs, exportCerts, exportStruct, freshPlatform, issue, status } from './helpers.js';

afterAll(cleanupDirs);

function csr(p: ReturnType<typeof freshPlatform>): Buffer {
  const r = issue(p, Cmd.PEK_CSR, { struct: addrLen(ADDR_A, 2084) });
  expect(r.errno).toBe(0);
  return r.outs[0]!.data;
}

describe('PEK_CERT_IMPORT', () => {
  it('regenerates the PDH, signed by the imported PEK (SEV API; sev-tool checks it)', () => {
    const p = freshPlatform();
    const before = exportCerts(p).pdh;
    const key = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    const oca = signSevCert(createSevCert({ usage: Usage.OCA, publicKey: crypto.createPublicKey(key) }), 1, {
      signerUsage: Usage.OCA,
      signerAlgo: Algo.ECDSA_SHA256,
      privateKey: key,
    });
    const signed = signSevCert(csr(p), 'first-empty', { signerUsage: Usage.OCA, signerAlgo: Algo.ECDSA_SHA256, privateKey: key });
    expect(issue(p, Cmd.PEK_CERT_IMPORT, { struct: Buffer.alloc(24), blobs: [encodeSevCert(signed), encodeSevCert(oca)] }).errno).toBe(0);
    const { pdh, chain } = exportCerts(p);
    expect(pdh.equals(before)).toBe(false);
    expect(verifySevLink(decodeSevCert(chain.subarray(0, 2084)), decodeSevCert(pdh)).ok).toBe(true);
  });
});

describe('guest init on an UNINIT platform (KVM sev_guest_init → sev_platform_init)', () => {
  it('sevInit INITs the platform after a reset; LAUNCH_START then works with the new PDH', () => {
    const p = freshPlatform();
    expect(issue(p, Cmd.FACTORY_RESET).errno).toBe(0);
    expect(status(p).state).toBe(0);
    expect(guestOp(p, 'platformStatus', {})).toMatchObject({ state: 'UNINIT', esConfigured: false });
    guestOp(p, 'sevInit', {});
    expect(guestOp(p, 'platformStatus', {})).toMatchObject({ state: 'INIT', esConfigured: true });
    const s = createSession(exportCerts(p).pdh, 1);
    const { handle } = guestOp(p, 'launchStart', { policy: 1, godh: s.godh.toString('base64'), session: s.session.toString('base64') }) as { handle: number };
    expect(handle).toBeGreaterThan(0);
    expect(status(p)).toMatchObject({ state: 2, guests: 1 });
  });

  it('on the 6.16 driver too, the guest keeps the platform INIT', () => {
    const p = freshPlatform({ kernel: '6.16', bootState: 'UNINIT' });
    guestOp(p, 'sevInit', {});
    expect(status(p).state).toBe(1);
  });

  it('a failing INIT is the guest init error with its status', () => {
    const p = freshPlatform({ bootState: 'UNINIT' });
    p.injectFault({ cmd: 'INIT', fwStatus: 'HWSEV_RET_PLATFORM' });
    expect(() => guestOp(p, 'sevInit', {})).toThrow(expect.objectContaining({ fwStatus: Ret.HWSEV_RET_PLATFORM }));
    expect(status(p).state).toBe(0);
  });
});

describe('implicit INIT retries once after SECURE_DATA_INVALID', () => {
  it('one SECURE_DATA_INVALID: the retry succeeds with the persistent state regenerated', () => {
    const p = freshPlatform({ bootState: 'UNINIT' });
    const pdhBefore = p.certificate('pdh');
    p.injectFault({ cmd: 'INIT', fwStatus: 'SECURE_DATA_INVALID' });
    const r = issue(p, Cmd.PDH_GEN);
    expect(r.errno).toBe(0);
    expect(status(p).state).toBe(1);
    expect(p.certificate('pdh').equals(pdhBefore)).toBe(false);
  });

  it('twice: EIO with SECURE_DATA_INVALID, still UNINIT', () => {
    const p = freshPlatform({ bootState: 'UNINIT' });
    p.injectFault({ cmd: 'INIT', fwStatus: 'SECURE_DATA_INVALID', times: 2 });
    const r = issue(p, Cmd.PDH_GEN);
    expect(r.errno).toBe(Errno.EIO);
    expect(r.fwError).toBe(Ret.SECURE_DATA_INVALID);
    expect(status(p).state).toBe(0);
  });
});

describe('SNP_SET_CONFIG / SNP_VLEK_LOAD argument checks (sev-dev.c order)', () => {
  it('NULL data is EINVAL, before the writable check', () => {
    const p = freshPlatform();
    for (const cmd of [Cmd.SNP_SET_CONFIG, Cmd.SNP_VLEK_LOAD]) {
      expect(issue(p, cmd, { dataNull: true }).errno).toBe(Errno.EINVAL);
      expect(issue(p, cmd, { dataNull: true, writable: false }).errno).toBe(Errno.EINVAL);
    }
  });

  it('SNP not initialized is EINVAL even on a read-only fd; initialized + read-only is EPERM', () => {
    const p = freshPlatform({ snpInitialized: false });
    expect(issue(p, Cmd.SNP_SET_CONFIG, { struct: Buffer.alloc(64), writable: false }).errno).toBe(Errno.EINVAL);
    expect(issue(p, Cmd.SNP_VLEK_LOAD, { struct: Buffer.alloc(16), writable: false }).errno).toBe(Errno.EINVAL);
    const q = freshPlatform();
    expect(issue(q, Cmd.SNP_SET_CONFIG, { struct: Buffer.alloc(64), writable: false }).errno).toBe(Errno.EPERM);
  });
});

describe('GET_ID2 allocation limit', () => {
  it('a length above KMALLOC_MAX_SIZE (4 MiB) is ENOMEM without a firmware call; 4 MiB itself works', () => {
    const p = freshPlatform();
    const r = issue(p, Cmd.GET_ID2, { struct: addrLen(ADDR_A, 1 << 30), writable: false });
    expect(r.errno).toBe(Errno.ENOMEM);
    expect(r.errorSet).toBe(false);
    const ok = issue(p, Cmd.GET_ID2, { struct: addrLen(ADDR_A, 4 << 20), writable: false });
    expect(ok.errno).toBe(0);
    expect(ok.struct.readUInt32LE(8)).toBe(64);
  });
});

describe('PDH_CERT_EXPORT on an UNINIT platform, read-only fd, bad struct', () => {
  it('pre-6.16: EPERM (the writable check comes before the copy)', () => {
    const p = freshPlatform({ bootState: 'UNINIT' });
    expect(issue(p, Cmd.PDH_CERT_EXPORT, { writable: false, dataNull: true }).errno).toBe(Errno.EPERM);
    expect(issue(p, Cmd.PDH_CERT_EXPORT, { writable: false, struct: exportStruct(ADDR_A, 0x4001, ADDR_B, 6252) }).errno).toBe(Errno.EPERM);
  });

  it('6.16: EFAULT (copy_from_user and the blob sizes come first)', () => {
    const p = freshPlatform({ bootState: 'UNINIT', kernel: '6.16' });
    expect(issue(p, Cmd.PDH_CERT_EXPORT, { writable: false, dataNull: true }).errno).toBe(Errno.EFAULT);
    expect(issue(p, Cmd.PDH_CERT_EXPORT, { writable: false, struct: exportStruct(ADDR_A, 0x4001, ADDR_B, 6252) }).errno).toBe(Errno.EFAULT);
    expect(issue(p, Cmd.PDH_CERT_EXPORT, { writable: false, struct: exportStruct(0n, 0, 0n, 0) }).errno).toBe(Errno.EPERM);
  });
});

describe('guest firmware: what the owner side refuses, the firmware refuses', () => {
  function launched(p: ReturnType<typeof freshPlatform>) {
    const s = createSession(exportCerts(p).pdh, 1);
    const { handle } = guestOp(p, 'launchStart', { policy: 1, godh: s.godh.toString('base64'), session: s.session.toString('base64') }) as { handle: number };
    guestOp(p, 'launchUpdateData', { handle, data: Buffer.alloc(4096, 1).toString('base64') });
    const { measurement } = guestOp(p, 'launchMeasure', { handle }) as { measurement: string };
    return { s, handle, blob: Buffer.from(measurement, 'base64') };
  }

  it('LAUNCH_SECRET takes a payload that is not a multiple of 16, as sev-tool packages them', () => {
    const p = freshPlatform();
    const { s, handle, blob } = launched(p);
    const pkt = buildSecret({ tek: s.tek, tik: s.tik, measurement: blob, plaintext: Buffer.alloc(20, 7) });
    expect(pkt.payload.length).toBe(20);
    const r = guestOp(p, 'launchSecret', { handle, header: pkt.header.toString('base64'), payload: pkt.payload.toString('base64'), gpa: 0 }) as {
      plaintext: string;
    };
    expect(Buffer.from(r.plaintext, 'base64').equals(Buffer.alloc(20, 7))).toBe(true);
  });

  it("a GODH with non-zero bytes past a coordinate's 48 is INVALID_CERTIFICATE", () => {
    const p = freshPlatform();
    const s = createSession(exportCerts(p).pdh, 1);
    for (const off of [0x14 + 48, 0x14 + 71, 0x5c + 48]) {
      const godh = Buffer.from(s.godh);
      godh[off] = 1;
      expect(() => guestOp(p, 'launchStart', { policy: 1, godh: godh.toString('base64'), session: s.session.toString('base64') })).toThrow(
        expect.objectContaining({ fwStatus: Ret.INVALID_CERTIFICATE }),
      );
    }
    expect(status(p).guests).toBe(0);
  });

  it('LAUNCH_MEASURE below API 0.17 is refused with a clear line, not a wrong value', () => {
    const p = freshPlatform({ api: { major: 0, minor: 16, build: 3 } });
    const { handle } = guestOp(p, 'launchStart', { policy: 0 }) as { handle: number };
    guestOp(p, 'launchUpdateData', { handle, data: Buffer.alloc(16).toString('base64') });
    let err: unknown;
    try {
      guestOp(p, 'launchMeasure', { handle });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SimFirmwareError);
    expect((err as SimFirmwareError).fwStatus).toBe(Ret.UNSUPPORTED);
    expect((err as Error).message).toMatch(/API 0\.16.*0\.17/);
  });
});

describe('the addon: an EIO without a firmware call', () => {
  it.skipIf(process.env.SEVKIT_HW === '1' || !process.env.SEVKIT_SIM_STATE)('has no firmware status (not "SEV_RET_SUCCESS")', async () => {
    const { armFault } = await import('../../lib/sim/faults.js');
    const { SevPlatform } = await import('../../lib/platform/index.js');
    armFault(process.env.SEVKIT_SIM_STATE!, { cmd: 'PLATFORM_STATUS', errno: 'EIO', pid: process.pid });
    const err = (await new SevPlatform().status().catch((e: unknown) => e)) as { code?: string; fwStatus?: number; message: string };
    expect(err.code).toBe('EIO');
    expect(err.fwStatus).toBeUndefined();
    expect(err.message).not.toMatch(/SEV_RET_SUCCESS/);
    expect(err.message).toMatch(/without a firmware status/);
  });
});
