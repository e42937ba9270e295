/**
 * The firmware/driver model, driven directly with the requests the shim sends:
 * state machine, implicit INIT, ownership, length probe, write access, faults,
 * persistence and determinism.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SimPlatform, SimStateError } from '../../lib/sim/platform.js';
import { armFault } from '../../lib/sim/faults.js';
import { guestOp } from '../../lib/sim/guests.js';
import { Ret as RetTable } from '../../lib/sim/uapi.js';
import { Usage, Algo } from '../../lib/certs/constants.js';
import { createSevCert, signSevCert, decodeSevCert, encodeSevCert } from '../../lib/certs/sev-cert.js';
import { ADDR_A, ADDR_B, Cmd, Errno, Ret, addrLen, cleanupDirs, exportCerts, exportStruct, freshPlatform, issue, status, tmpDir } from './helpers.js';
import { ecSigns, keyMatchesCert } from './independent.js';

afterAll(cleanupDirs);

describe('PLATFORM_STATUS', () => {
  it('reports API 1.55 build 21, INIT, SEV-ES configured, self-owned, no guests', () => {
    const p = freshPlatform();
    const r = issue(p, Cmd.PLATFORM_STATUS, { writable: false });
    expect(r.errno).toBe(0);
    expect(r.errorSet).toBe(true);
    expect(r.fwError).toBe(0);
    expect(r.struct.length).toBe(12);
    expect(status(p)).toEqual({ major: 1, minor: 55, state: 1, flags: 0x100, build: 21, guests: 0 });
  });
});

describe('PDH_CERT_EXPORT length probe', () => {
  it('a zero query answers INVALID_LEN with 2084/6252 and copies no blob', () => {
    const p = freshPlatform();
    for (const s of [
      exportStruct(0n, 0, 0n, 0),
      exportStruct(ADDR_A, 0, ADDR_B, 6252),
      exportStruct(ADDR_A, 2084, 0n, 6252),
      exportStruct(0n, 2084, ADDR_B, 6252),
    ]) {
      const r = issue(p, Cmd.PDH_CERT_EXPORT, { writable: false, struct: s });
      expect(r.errno).toBe(Errno.EIO);
      expect(r.fwError).toBe(Ret.INVALID_LEN);
      expect(r.struct.readUInt32LE(8)).toBe(2084);
      expect(r.struct.readUInt32LE(20)).toBe(6252);
      expect(r.outs).toEqual([]);
    }
  });

  it('exact lengths return the PDH and PEK‖OCA‖CEK matching the state files', () => {
    const p = freshPlatform();
    const { pdh, chain } = exportCerts(p, false);
    expect(pdh.length).toBe(2084);
    expect(chain.length).toBe(6252);
    expect(pdh.equals(fs.readFileSync(path.join(p.stateDir, 'pdh.cert')))).toBe(true);
    expect(chain.subarray(0, 2084).equals(fs.readFileSync(path.join(p.stateDir, 'pek.cert')))).toBe(true);
    expect(chain.subarray(4168).equals(fs.readFileSync(path.join(p.stateDir, 'cek.cert')))).toBe(true);
  });

  it('an undersized non-zero buffer gets INVALID_LEN and nothing copied out', () => {
    const p = freshPlatform();
    const r = issue(p, Cmd.PDH_CERT_EXPORT, { struct: exportStruct(ADDR_A, 16, ADDR_B, 6252) });
    expect(r.errno).toBe(Errno.EIO);
    expect(r.fwError).toBe(Ret.INVALID_LEN);
    expect(r.struct.readUInt32LE(8)).toBe(2084);
    expect(r.outs).toEqual([]);
  });

  it('lengths above 16 KiB are EFAULT from the driver, before any firmware call', () => {
    const p = freshPlatform();
    const r = issue(p, Cmd.PDH_CERT_EXPORT, { struct: exportStruct(ADDR_A, 0x4001, ADDR_B, 6252) });
    expect(r.errno).toBe(Errno.EFAULT);
    expect(r.errorSet).toBe(false);
  });

  it('a NULL data pointer is EFAULT', () => {
    const p = freshPlatform();
    expect(issue(p, Cmd.PDH_CERT_EXPORT, { dataNull: true }).errno).toBe(Errno.EFAULT);
    expect(issue(p, Cmd.PEK_CSR, { dataNull: true }).errno).toBe(Errno.EFAULT);
    expect(issue(p, Cmd.GET_ID2, { dataNull: true }).errno).toBe(Errno.EFAULT);
  });
});

describe('write access (FMODE_WRITE)', () => {
  it('mutating commands need a writable fd: EPERM without a firmware call', () => {
    const p = freshPlatform();
    const cases: [number, Buffer][] = [
      [Cmd.FACTORY_RESET, Buffer.alloc(0)],
      [Cmd.PEK_GEN, Buffer.alloc(0)],
      [Cmd.PDH_GEN, Buffer.alloc(0)],
      [Cmd.PEK_CSR, addrLen(0n, 0)],
      [Cmd.PEK_CERT_IMPORT, Buffer.alloc(24)],
      [Cmd.SNP_SET_CONFIG, Buffer.alloc(64)],
    ];
    for (const [cmd, struct] of cases) {
      const r = issue(p, cmd, { writable: false, struct });
      expect(r.errno, `cmd ${cmd}`).toBe(Errno.EPERM);
      expect(r.errorSet).toBe(false);
    }
  });

  it('status, GET_ID2, SNP status/commit and PDH export on an INIT platform work read-only', () => {
    const p = freshPlatform();
    expect(issue(p, Cmd.PLATFORM_STATUS, { writable: false }).errno).toBe(0);
    expect(issue(p, Cmd.GET_ID2, { writable: false, struct: addrLen(ADDR_A, 64) }).errno).toBe(0);
    expect(issue(p, Cmd.SNP_PLATFORM_STATUS, { writable: false }).errno).toBe(0);
    expect(issue(p, Cmd.SNP_COMMIT, { writable: false }).errno).toBe(0);
    expect(() => exportCerts(p, false)).not.toThrow();
  });

  it('PDH export on an UNINIT platform needs write access and INITs implicitly', () => {
    const p = freshPlatform({ bootState: 'UNINIT' });
    expect(status(p).state).toBe(0);
    expect(status(p).flags & 0x100).toBe(0);
    const ro = issue(p, Cmd.PDH_CERT_EXPORT, { writable: false, struct: exportStruct(0n, 0, 0n, 0) });
    expect(ro.errno).toBe(Errno.EPERM);
    expect(status(p).state).toBe(0);
    exportCerts(p, true);
    expect(status(p).state).toBe(1);
    expect(status(p).flags & 0x100).toBe(0x100);
  });

  it('PDH_GEN on an UNINIT platform INITs it first', () => {
    const p = freshPlatform({ bootState: 'UNINIT' });
    expect(issue(p, Cmd.PDH_GEN).errno).toBe(0);
    expect(status(p).state).toBe(1);
  });
});

describe('key regeneration', () => {
  it('PDH_GEN replaces only the PDH; pdh.key.pem follows; PEK still signs it', () => {
    const p = freshPlatform();
    const before = exportCerts(p);
    expect(issue(p, Cmd.PDH_GEN).errno).toBe(0);
    const after = exportCerts(p);
    expect(after.pdh.equals(before.pdh)).toBe(false);
    expect(after.chain.equals(before.chain)).toBe(true);
    expect(keyMatchesCert(fs.readFileSync(path.join(p.stateDir, 'pdh.key.pem')), after.pdh)).toBe(true);
    expect(ecSigns(after.chain.subarray(0, 2084), after.pdh)).toBe(true);
  });

  it('PEK_GEN replaces OCA, PEK and PDH but not the CEK', () => {
    const p = freshPlatform();
    const before = exportCerts(p);
    expect(issue(p, Cmd.PEK_GEN).errno).toBe(0);
    const after = exportCerts(p);
    for (let i = 0; i < 2; i++) expect(after.chain.subarray(i * 2084, (i + 1) * 2084).equals(before.chain.subarray(i * 2084, (i + 1) * 2084))).toBe(false);
    expect(after.chain.subarray(4168).equals(before.chain.subarray(4168))).toBe(true);
    expect(after.pdh.equals(before.pdh)).toBe(false);
  });

  it('FACTORY_RESET: EBUSY while a guest runs, else SHUTDOWN + reset to UNINIT with new keys', () => {
    const p = freshPlatform();
    const before = exportCerts(p);
    const { handle } = guestOp(p, 'launchStart', { policy: 1 }) as { handle: number };
    expect(status(p).state).toBe(2);
    expect(status(p).guests).toBe(1);
    const busy = issue(p, Cmd.FACTORY_RESET);
    expect(busy.errno).toBe(Errno.EBUSY);
    guestOp(p, 'decommission', { handle });
    expect(status(p).state).toBe(1);
    expect(issue(p, Cmd.FACTORY_RESET).errno).toBe(0);
    expect(status(p).state).toBe(0);
    const after = exportCerts(p);
    expect(after.pdh.equals(before.pdh)).toBe(false);
    expect(after.chain.subarray(0, 4168).equals(before.chain.subarray(0, 4168))).toBe(false);
    expect(after.chain.subarray(4168).equals(before.chain.subarray(4168))).toBe(true);
  });

  it('PEK_GEN while WORKING is INVALID_PLATFORM_STATE; PDH_GEN is allowed', () => {
    const p = freshPlatform();
    guestOp(p, 'launchStart', { policy: 1 });
    const r = issue(p, Cmd.PEK_GEN);
    expect(r.errno).toBe(Errno.EIO);
    expect(r.fwError).toBe(Ret.INVALID_PLATFORM_STATE);
    expect(issue(p, Cmd.PDH_GEN).errno).toBe(0);
  });
});

describe('ownership: PEK_CSR and PEK_CERT_IMPORT', () => {
  function csr(p: SimPlatform): Buffer {
    const q = issue(p, Cmd.PEK_CSR, { struct: addrLen(0n, 0) });
    expect(q.errno).toBe(Errno.EIO);
    expect(q.fwError).toBe(Ret.INVALID_LEN);
    expect(q.struct.readUInt32LE(8)).toBe(2084);
    const r = issue(p, Cmd.PEK_CSR, { struct: addrLen(ADDR_A, 2084) });
    expect(r.errno).toBe(0);
    return r.outs[0]!.data;
  }

  function ownerOca() {
    const key = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    const oca = signSevCert(createSevCert({ usage: Usage.OCA, publicKey: crypto.createPublicKey(key) }), 1, {
      signerUsage: Usage.OCA,
      signerAlgo: Algo.ECDSA_SHA256,
      privateKey: key,
    });
    return { key, oca };
  }

  it('the CSR is the current PEK, unsigned', () => {
    const p = freshPlatform();
    const c = decodeSevCert(csr(p));
    const pek = decodeSevCert(exportCerts(p).chain.subarray(0, 2084));
    expect(c.usage).toBe(Usage.PEK);
    expect(c.pubkey).toEqual(pek.pubkey);
    expect(c.sigs.map((s) => s.usage)).toEqual([Usage.INV, Usage.INV]);
  });

  it('import of an OCA-signed PEK makes the platform externally owned; the firmware adds the CEK signature', () => {
    const p = freshPlatform();
    const { key, oca } = ownerOca();
    const signed = signSevCert(csr(p), 'first-empty', { signerUsage: Usage.OCA, signerAlgo: Algo.ECDSA_SHA256, privateKey: key });
    const r = issue(p, Cmd.PEK_CERT_IMPORT, { struct: Buffer.alloc(24), blobs: [encodeSevCert(signed), encodeSevCert(oca)] });
    expect(r.errno).toBe(0);
    expect(status(p).flags & 1).toBe(1);
    expect(p.ownership).toBe('external');
    const { chain } = exportCerts(p);
    const [pek, ocaOut, cek] = [chain.subarray(0, 2084), chain.subarray(2084, 4168), chain.subarray(4168)];
    expect(ocaOut.equals(encodeSevCert(oca))).toBe(true);
    expect(ecSigns(ocaOut, pek)).toBe(true);
    expect(ecSigns(cek, pek)).toBe(true);
    expect(fs.existsSync(path.join(p.stateDir, 'oca.key.pem'))).toBe(false);
    // Ownership survives a restart of the simulator.
    const again = SimPlatform.open(p.stateDir);
    expect(again.ownership).toBe('external');
    expect(status(again).flags & 1).toBe(1);
    // A second import: ALREADY_OWNED. PEK_GEN: self-owned again.
    const r2 = issue(p, Cmd.PEK_CERT_IMPORT, { struct: Buffer.alloc(24), blobs: [encodeSevCert(signed), encodeSevCert(oca)] });
    expect(r2.fwError).toBe(Ret.ALREADY_OWNED);
    expect(issue(p, Cmd.PEK_GEN).errno).toBe(0);
    expect(status(p).flags & 1).toBe(0);
    expect(fs.existsSync(path.join(p.stateDir, 'oca.key.pem'))).toBe(true);
  });

  it('refuses a PEK not signed by the OCA (BAD_SIGNATURE), a foreign PEK key (INVALID_CERTIFICATE), missing blobs (EINVAL)', () => {
    const p = freshPlatform();
    const { oca } = ownerOca();
    const other = ownerOca();
    const signedByOther = signSevCert(csr(p), 'first-empty', { signerUsage: Usage.OCA, signerAlgo: Algo.ECDSA_SHA256, privateKey: other.key });
    const bad = issue(p, Cmd.PEK_CERT_IMPORT, { struct: Buffer.alloc(24), blobs: [encodeSevCert(signedByOther), encodeSevCert(oca)] });
    expect(bad.errno).toBe(Errno.EIO);
    expect(bad.fwError).toBe(Ret.BAD_SIGNATURE);
    const foreignKey = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    const foreign = signSevCert(createSevCert({ usage: Usage.PEK, publicKey: crypto.createPublicKey(foreignKey) }), 1, {
      signerUsage: Usage.OCA,
      signerAlgo: Algo.ECDSA_SHA256,
      privateKey: other.key,
    });
    const inv = issue(p, Cmd.PEK_CERT_IMPORT, { struct: Buffer.alloc(24), blobs: [encodeSevCert(foreign), encodeSevCert(other.oca)] });
    expect(inv.fwError).toBe(Ret.INVALID_CERTIFICATE);
    expect(issue(p, Cmd.PEK_CERT_IMPORT, { struct: Buffer.alloc(24), blobs: [null, encodeSevCert(oca)] }).errno).toBe(Errno.EINVAL);
    expect(issue(p, Cmd.PEK_CERT_IMPORT, { struct: Buffer.alloc(24), blobs: [Buffer.alloc(2084), Buffer.alloc(2084)] }).fwError).toBe(Ret.INVALID_CERTIFICATE);
    expect(p.ownership).toBe('self');
  });
});

describe('GET_ID / GET_ID2', () => {
  it('GET_ID2 probes to 64 bytes; the id equals GET_ID socket1', () => {
    const p = freshPlatform();
    const q = issue(p, Cmd.GET_ID2, { writable: false, struct: addrLen(0n, 0) });
    expect(q.errno).toBe(Errno.EIO);
    expect(q.fwError).toBe(Ret.INVALID_LEN);
    expect(q.struct.readUInt32LE(8)).toBe(64);
    const small = issue(p, Cmd.GET_ID2, { writable: false, struct: addrLen(ADDR_A, 10) });
    expect(small.fwError).toBe(Ret.INVALID_LEN);
    expect(small.outs).toEqual([]);
    const r = issue(p, Cmd.GET_ID2, { writable: false, struct: addrLen(ADDR_A, 64) });
    expect(r.errno).toBe(0);
    const legacy = issue(p, Cmd.GET_ID, { writable: false });
    expect(legacy.struct.length).toBe(128);
    expect(legacy.struct.subarray(0, 64).equals(r.outs[0]!.data)).toBe(true);
    expect(legacy.struct.subarray(64).every((b) => b === 0)).toBe(true);
  });

  it('firmware API below 0.16 gives errno 524 (ENOTSUPP)', () => {
    const p = freshPlatform({ api: { major: 0, minor: 15, build: 1 } });
    expect(issue(p, Cmd.GET_ID2, { struct: addrLen(0n, 0) }).errno).toBe(524);
    expect(issue(p, Cmd.GET_ID).errno).toBe(524);
  });
});

describe('SNP commands', () => {
  it('SNP_PLATFORM_STATUS reports SNP INIT with the TCB; SET_CONFIG masks and lowers the reported TCB; COMMIT restores it', () => {
    const p = freshPlatform();
    const st = issue(p, Cmd.SNP_PLATFORM_STATUS, { writable: false }).struct;
    expect(st.length).toBe(32);
    expect(st[2]).toBe(1);
    expect(st[3]! & 1).toBe(1);
    const current = st.readBigUInt64LE(16);
    expect(st.readBigUInt64LE(24)).toBe(current);
    const cfg = Buffer.alloc(64);
    cfg.writeBigUInt64LE(current - 1n, 0);
    cfg.writeUInt32LE(3, 8);
    expect(issue(p, Cmd.SNP_SET_CONFIG, { struct: cfg }).errno).toBe(0);
    const st2 = issue(p, Cmd.SNP_PLATFORM_STATUS).struct;
    expect(st2.readUInt32LE(8) & 3).toBe(3);
    expect(st2.readBigUInt64LE(24)).toBe(current - 1n);
    expect(issue(p, Cmd.SNP_COMMIT, { writable: false }).errno).toBe(0);
    expect(issue(p, Cmd.SNP_PLATFORM_STATUS).struct.readBigUInt64LE(24)).toBe(current);
  });

  it('SET_CONFIG with reserved bits or a TCB above the current one is INVALID_PARAM', () => {
    const p = freshPlatform();
    const cfg = Buffer.alloc(64);
    cfg[20] = 1;
    expect(issue(p, Cmd.SNP_SET_CONFIG, { struct: cfg }).fwError).toBe(Ret.INVALID_PARAM);
    const high = Buffer.alloc(64);
    high.writeBigUInt64LE(0xffffffffffffffffn, 0);
    expect(issue(p, Cmd.SNP_SET_CONFIG, { struct: high }).fwError).toBe(Ret.INVALID_PARAM);
  });

  it('without SNP initialized the SNP ioctls are EINVAL (pre-6.16 driver); NULL data is EINVAL', () => {
    const p = freshPlatform({ snpInitialized: false });
    expect(issue(p, Cmd.SNP_PLATFORM_STATUS).errno).toBe(Errno.EINVAL);
    expect(issue(p, Cmd.SNP_COMMIT).errno).toBe(Errno.EINVAL);
    expect(issue(p, Cmd.SNP_SET_CONFIG, { struct: Buffer.alloc(64) }).errno).toBe(Errno.EINVAL);
    expect(issue(freshPlatform(), Cmd.SNP_PLATFORM_STATUS, { dataNull: true }).errno).toBe(Errno.EINVAL);
  });

  it('unknown command ids are EINVAL', () => {
    const p = freshPlatform();
    for (const c of [13, 14, 99]) expect(issue(p, c).errno).toBe(Errno.EINVAL);
  });
});

describe('fault injection', () => {
  it('every firmware status can be injected and comes back as EIO + that status', () => {
    const p = freshPlatform();
    for (const code of Object.values(RetTable).filter((c) => c !== 0)) {
      p.injectFault({ cmd: 'PLATFORM_STATUS', fwStatus: code });
      const r = issue(p, Cmd.PLATFORM_STATUS);
      expect(r.errno).toBe(Errno.EIO);
      expect(r.fwError).toBe(code);
      expect(r.struct.length).toBe(0);
    }
    expect(issue(p, Cmd.PLATFORM_STATUS).errno).toBe(0); // each fault fires once
  });

  it('a driver errno fault (EBUSY) fails before the firmware; "always" stays armed', () => {
    const p = freshPlatform();
    p.injectFault({ cmd: 'PDH_GEN', errno: 'EBUSY', times: 'always' });
    for (let i = 0; i < 3; i++) {
      const r = issue(p, Cmd.PDH_GEN);
      expect(r.errno).toBe(Errno.EBUSY);
      expect(r.errorSet).toBe(false);
    }
    p.faults.clear();
    expect(issue(p, Cmd.PDH_GEN).errno).toBe(0);
  });

  it('faults armed in <state>/faults.json fire once, by name, and are removed', () => {
    const p = freshPlatform();
    armFault(p.stateDir, { cmd: 'PDH_CERT_EXPORT', fwStatus: 'SEV_RET_HWSEV_RET_PLATFORM' });
    const r = issue(p, Cmd.PDH_CERT_EXPORT, { struct: exportStruct(0n, 0, 0n, 0) });
    expect(r.fwError).toBe(Ret.HWSEV_RET_PLATFORM);
    expect(JSON.parse(fs.readFileSync(path.join(p.stateDir, 'faults.json'), 'utf8'))).toEqual([]);
    expect(() => exportCerts(p)).not.toThrow();
  });

  it('a failing implicit INIT surfaces as EIO with its status', () => {
    const p = freshPlatform({ bootState: 'UNINIT' });
    p.injectFault({ cmd: 'INIT', fwStatus: 'SECURE_DATA_INVALID', times: 2 }); // the driver retries once
    const r = issue(p, Cmd.PDH_GEN);
    expect(r.errno).toBe(Errno.EIO);
    expect(r.fwError).toBe(Ret.SECURE_DATA_INVALID);
    expect(status(p).state).toBe(0);
  });

  it('open faults deny the device (EACCES); bad specs are refused', () => {
    const p = freshPlatform();
    p.injectFault({ on: 'open', cmd: 'O_RDWR', errno: 'EACCES' });
    expect(p.openDevice(0)).toBe(0);
    expect(p.openDevice(2)).toBe(Errno.EACCES);
    expect(p.openDevice(2)).toBe(0);
    expect(() => p.injectFault({ cmd: 'PDH_GEN' })).toThrow(/fwStatus or errno/);
    expect(() => p.injectFault({ cmd: 'PDH_GEN', fwStatus: 'NOT_A_STATUS' })).toThrow(/unknown firmware status/);
  });
});

describe('state dir and determinism', () => {
  const files = [
    'ark.cert',
    'ask.cert',
    'cek.cert',
    'oca.cert',
    'pek.cert',
    'pdh.cert',
    'ark.key.pem',
    'ask.key.pem',
    'cek.key.pem',
    'oca.key.pem',
    'pek.key.pem',
    'pdh.key.pem',
  ];

  it('holds PKCS#8 PEM keys (0600) and raw certs; each key matches its cert', () => {
    const p = freshPlatform();
    for (const f of files) expect(fs.existsSync(path.join(p.stateDir, f)), f).toBe(true);
    for (const n of ['cek', 'oca', 'pek', 'pdh']) {
      const pem = fs.readFileSync(path.join(p.stateDir, `${n}.key.pem`), 'utf8');
      expect(pem.startsWith('-----BEGIN PRIVATE KEY-----')).toBe(true);
      expect(fs.statSync(path.join(p.stateDir, `${n}.key.pem`)).mode & 0o777).toBe(0o600);
      expect(keyMatchesCert(pem, fs.readFileSync(path.join(p.stateDir, `${n}.cert`)))).toBe(true);
    }
    expect(fs.readFileSync(path.join(p.stateDir, 'README.txt'), 'utf8')).toMatch(/TEST keys/);
  });

  it('same seed → byte-identical keys and certs, also after the same commands', () => {
    const a = freshPlatform({ seed: '1' });
    const b = freshPlatform({ seed: '1' });
    for (const f of files) expect(fs.readFileSync(path.join(a.stateDir, f)).equals(fs.readFileSync(path.join(b.stateDir, f))), f).toBe(true);
    issue(a, Cmd.PDH_GEN);
    issue(b, Cmd.PDH_GEN);
    expect(exportCerts(a).pdh.equals(exportCerts(b).pdh)).toBe(true);
  });

  it('different seed → different keys, chip id and roots', { timeout: 120_000 }, () => {
    const a = freshPlatform({ seed: '1' });
    const b = freshPlatform({ seed: '2' });
    for (const f of ['ark.cert', 'cek.cert', 'pdh.key.pem', 'pek.cert']) {
      expect(fs.readFileSync(path.join(a.stateDir, f)).equals(fs.readFileSync(path.join(b.stateDir, f))), f).toBe(false);
    }
    expect(a.chipIdBytes.equals(b.chipIdBytes)).toBe(false);
  });

  it('reopening keeps the state; a different seed for an existing dir is refused', () => {
    const p = freshPlatform();
    issue(p, Cmd.PDH_GEN);
    const pdh = exportCerts(p).pdh;
    const again = SimPlatform.open(p.stateDir);
    expect(exportCerts(again).pdh.equals(pdh)).toBe(true);
    expect(() => SimPlatform.open(p.stateDir, { seed: '3' })).toThrow(SimStateError);
    expect(() => SimPlatform.open(p.stateDir, { seed: '3' })).toThrow(/created with seed 1/);
  });

  it('a damaged state dir is a one-line error naming the missing file', () => {
    const p = freshPlatform();
    fs.rmSync(path.join(p.stateDir, 'pek.key.pem'));
    expect(() => SimPlatform.open(p.stateDir)).toThrow(/cannot read pek\.key\.pem/);
    const d = tmpDir();
    fs.writeFileSync(path.join(d, 'state.json'), '{nope');
    expect(() => SimPlatform.open(d)).toThrow(/not valid JSON/);
  });
});

describe('kernel 6.16 driver behaviour', () => {
  it('implicit INIT is followed by SHUTDOWN: the platform stays UNINIT, the command still works', () => {
    const p = freshPlatform({ kernel: '6.16', bootState: 'UNINIT' });
    const before = exportCerts(p, true).pdh;
    expect(status(p).state).toBe(0);
    expect(issue(p, Cmd.PDH_GEN).errno).toBe(0);
    expect(status(p).state).toBe(0);
    expect(exportCerts(p, true).pdh.equals(before)).toBe(false);
    // read-only export of an UNINIT platform is still EPERM
    expect(issue(p, Cmd.PDH_CERT_EXPORT, { writable: false, struct: exportStruct(0n, 0, 0n, 0) }).errno).toBe(Errno.EPERM);
  });

  it('an INIT platform (kvm_amd loaded) stays INIT', () => {
    const p = freshPlatform({ kernel: '6.16' });
    exportCerts(p, false);
    expect(issue(p, Cmd.PDH_GEN).errno).toBe(0);
    expect(status(p).state).toBe(1);
  });

  it('a failed implicit INIT reports INVALID_PLATFORM_STATE', () => {
    const p = freshPlatform({ kernel: '6.16', bootState: 'UNINIT' });
    p.injectFault({ cmd: 'INIT', fwStatus: 'SECURE_DATA_INVALID', times: 2 }); // the driver retries once
    const r = issue(p, Cmd.PEK_GEN);
    expect(r.errno).toBe(Errno.EIO);
    expect(r.fwError).toBe(Ret.INVALID_PLATFORM_STATE);
  });

  it('SNP ioctls initialize SNP implicitly instead of EINVAL', () => {
    const p = freshPlatform({ kernel: '6.16', snpInitialized: false });
    const r = issue(p, Cmd.SNP_PLATFORM_STATUS);
    expect(r.errno).toBe(0);
    expect(r.struct[2]).toBe(1);
    expect(issue(p, Cmd.SNP_COMMIT).errno).toBe(0);
  });
});

describe('deterministic derivation (uncached)', () => {
  it('RSA keys and PSS signatures are functions of (seed, label)', async () => {
    const { deriveRsa, rsaPssSignDeterministic, deriveP384 } = await import('../../lib/sim/detcrypto.js');
    const a = deriveRsa('7', 'x', 2048);
    const b = deriveRsa('7', 'x', 2048);
    const c = deriveRsa('8', 'x', 2048);
    const n = (k: crypto.KeyObject) => k.export({ format: 'jwk' }).n;
    expect(n(a.publicKey)).toBe(n(b.publicKey));
    expect(n(a.publicKey)).not.toBe(n(c.publicKey));
    expect(a.privateKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    const s1 = rsaPssSignDeterministic(a.privateKey, 'sha256', Buffer.from('m'), '7', 'l');
    expect(s1.equals(rsaPssSignDeterministic(b.privateKey, 'sha256', Buffer.from('m'), '7', 'l'))).toBe(true);
    expect(crypto.verify('sha256', Buffer.from('m'), { key: a.publicKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, s1)).toBe(true);
    const d = (k: crypto.KeyObject) => k.export({ format: 'jwk' }).d;
    expect(d(deriveP384('7', 'pdh:0'))).toBe(d(deriveP384('7', 'pdh:0')));
    expect(d(deriveP384('7', 'pdh:0'))).not.toBe(d(deriveP384('7', 'pdh:1')));
  });
});

describe('guest capacity per simulated product', () => {
  it('an EPYC 9004 (default) holds 1006 guests, a Rome 509: the next allocation is RESOURCE_LIMIT, a freed slot is reusable', () => {
    for (const [product, asids] of [
      ['genoa', 1006],
      ['rome', 509],
    ] as const) {
      const p = freshPlatform(product === 'genoa' ? {} : { product });
      expect(p.product).toBe(product);
      const handles: number[] = [];
      for (let i = 0; i < asids; i++) {
        const r = p.allocGuest();
        expect(r.status, `guest ${i + 1} on ${product}`).toBe(Ret.SUCCESS);
        handles.push(r.slot!.handle);
      }
      expect(p.allocGuest().status).toBe(Ret.RESOURCE_LIMIT);
      expect(p.freeGuest(handles[0]!)).toBe(true);
      expect(p.allocGuest().status).toBe(Ret.SUCCESS);
      expect(p.allocGuest().status).toBe(Ret.RESOURCE_LIMIT);
    }
  });

  it('the simulated host fixture reports the same ASID count in CPUID 0x8000001F', async () => {
    const { prepareSimHost } = await import('../../lib/sim/env.js');
    const { decodeSevLeaf } = await import('../../lib/platform/cpuid.js');
    for (const product of ['genoa', 'milan', 'rome'] as const) {
      const host = prepareSimHost(tmpDir(), 'pre-6.16', product);
      const cpuid = JSON.parse(fs.readFileSync(host.cpuidFile, 'utf8')) as Record<string, [number, number, number, number]>;
      const key = Object.keys(cpuid).find((k) => /8000001f/i.test(k))!;
      expect(decodeSevLeaf(cpuid[key]!).maxAsids, product).toBe(freshPlatform({ product }).maxGuests);
    }
  });
});
