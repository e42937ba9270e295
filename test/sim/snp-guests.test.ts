/**
 * Several simulated SNP guests at once: two VMs launched by the QEMU wrapper (playing QEMU 9.2,
 * VM-less) with different firmware, vCPUs, policy and host data; a process per VM started with
 * SEVKIT_SIM_GUEST=<vm> gets, through the addon and the shim, a report that verifies under the
 * simulator's TEST roots and carries its own VM's launch, never the other's. An unknown guest gets
 * no device; a process that names no guest keeps snp-guest.json's identity.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ownSimSkipReason, runCli, VECTORS } from '../helpers/cli.js';
import { startSim, type SimSession } from '../../lib/sim/session.js';
import { SimSnpGuest } from '../../lib/sim/snp/guest.js';
import { writeSnpGuestConfig } from '../../lib/sim/snp/config.js';
import { GuestIoctl } from '../../lib/sim/snp/driver.js';
import { linkSnpLaunch, simGuestDevice, SimGuestUnknownError } from '../../lib/sim/snp/launch-link.js';
import { SimTsmTree } from '../../lib/sim/snp/tsm-tree.js';
import { SNP_LAUNCH_RECORD, type SnpLaunchRecord } from '../../lib/sim/qemu/snp-guest.js';
import { Supervisor, type ConfidentialVm } from '../../lib/vm/index.js';
import { tsmReport } from '../../lib/snp/tsm.js';
import { parseReport } from '../../lib/snp/report.js';
import { verifySnpReport, type SnpPolicy } from '../../lib/snp/verify.js';
import { certTableEntry, parseCertTable } from '../../lib/snp/certtable.js';
import type { ProductRoots } from '../../lib/snp/roots.js';
import type { SnpProduct } from '../../lib/snp/product.js';

const skip = ownSimSkipReason();
const AMDSEV_SUFFIX = path.join(VECTORS, 'sev-snp-measure/ovmf_AmdSev_suffix.bin');

interface GuestAnswer {
  code: number | null;
  stderr: string;
  report?: Buffer;
  certTable?: Buffer;
}

describe.skipIf(skip)('one report identity per simulated SNP guest', () => {
  let dir: string;
  let sim: SimSession;
  let guest: SimSnpGuest;
  let sup: Supervisor;
  let testRoots: (p: SnpProduct) => ProductRoots;
  const vms: ConfidentialVm[] = [];
  const run = crypto.randomBytes(3).toString('hex');
  const names = { a: `snpa-${run}`, b: `snpb-${run}` };
  const hostData = { a: crypto.randomBytes(32), b: crypto.randomBytes(32) };
  const policies = { a: 0x30000n, b: 0x30001n }; // ABI minor 1: within the simulated firmware's API
  const recs: Record<'a' | 'b', SnpLaunchRecord> = {} as never;
  let n = 0;

  /** `sevkit snp report` in a process of its own, as an in-guest program would run. */
  async function report(env: NodeJS.ProcessEnv, reportData: Buffer, device?: string): Promise<GuestAnswer> {
    const out = path.join(dir, `r${++n}.bin`);
    const certs = path.join(dir, `c${n}`);
    const r = await runCli(
      ['snp', 'report', '--report-data', reportData.toString('hex'), '--out', out, '--certs-out', certs, ...(device ? ['--device', device] : [])],
      {
        env: { ...sim.env, ...env },
        timeoutMs: 120_000,
      },
    );
    if (r.code !== 0) return { code: r.code, stderr: r.stderr };
    return { code: 0, stderr: r.stderr, report: fs.readFileSync(out), certTable: fs.readFileSync(path.join(certs, 'cert-table.bin')) };
  }

  function verify(a: GuestAnswer, policy: SnpPolicy) {
    const table = parseCertTable(a.certTable!);
    return verifySnpReport({
      report: a.report!,
      vek: certTableEntry(table, 'VCEK')!,
      intermediate: certTableEntry(table, 'ASK')!,
      ark: certTableEntry(table, 'ARK')!,
      policy: { vmpl: 0, allowSmt: true, ...policy },
      roots: testRoots,
      at: new Date('2027-06-01T00:00:00Z'),
    });
  }

  const policyOf = (r: Buffer) => r.readBigUInt64LE(0x008);

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-snp-guests-'));
    sim = await startSim({ stateDir: path.join(dir, 'state'), seed: '1' });
    guest = new SimSnpGuest(sim.daemon.platform);
    testRoots = (p: SnpProduct): ProductRoots => guest.testRoots(p);
    // Two firmware images (the AmdSev fixture's SEV metadata at the end of 64 KiB, different code before it).
    const suffix = fs.readFileSync(AMDSEV_SUFFIX);
    const fwA = path.join(dir, 'OVMF.a.fd');
    const fwB = path.join(dir, 'OVMF.b.fd');
    fs.writeFileSync(fwA, Buffer.concat([Buffer.alloc(60 * 1024), suffix]));
    fs.writeFileSync(fwB, Buffer.concat([Buffer.alloc(60 * 1024, 0x90), suffix]));
    sup = new Supervisor({
      qemu: sim.host.qemu,
      env: { ...sim.env, SEVKIT_SIM_QEMU_VERSION: '9.2.0', SEVKIT_REAL_QEMU: 'none' },
      runRoot: path.join(dir, 'run'),
    });
    vms.push(await sup.launch({ name: names.a, firmware: fwA, vcpus: 1, snp: { policy: policies.a, hostData: hostData.a } }));
    vms.push(await sup.launch({ name: names.b, firmware: fwB, vcpus: 2, snp: { policy: policies.b, hostData: hostData.b } }));
    for (const k of ['a', 'b'] as const) {
      recs[k] = JSON.parse(fs.readFileSync(path.join(sim.stateDir, 'guests', names[k], SNP_LAUNCH_RECORD), 'utf8')) as SnpLaunchRecord;
    }
  }, 300_000);

  afterAll(async () => {
    await sup?.close();
    await sim?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('each VM was launched with its own measurement', () => {
    expect(recs.a.measurement).not.toBe(recs.b.measurement);
    expect(recs.a.policy).toBe('0x30000');
    expect(recs.b.policy).toBe('0x30001');
  });

  it("a process per VM with SEVKIT_SIM_GUEST gets a verified report of its own VM's launch, not the other's", async () => {
    const nonces = { a: crypto.randomBytes(64), b: crypto.randomBytes(64) };
    const [ra, rb, ra2] = await Promise.all([
      report({ SEVKIT_SIM_GUEST: names.a }, nonces.a),
      report({ SEVKIT_SIM_GUEST: names.b }, nonces.b),
      report({ SEVKIT_SIM_GUEST: names.a }, nonces.b),
    ]);
    for (const r of [ra, rb, ra2]) expect(r.stderr + String(r.code)).toBe('0');
    for (const k of ['a', 'b'] as const) {
      const r = k === 'a' ? ra : rb;
      const other = k === 'a' ? 'b' : 'a';
      const base = { reportData: nonces[k], hostData: hostData[k] };
      const v = verify(r, { ...base, measurements: [Buffer.from(recs[k].measurement, 'hex')] });
      expect(v.failed).toEqual([]);
      expect(v.ok).toBe(true);
      const p = parseReport(r.report!);
      expect(p.measurement.toString('hex')).toBe(recs[k].measurement);
      expect(p.hostData).toEqual(hostData[k]);
      expect(policyOf(r.report!)).toBe(policies[k]);
      // The other VM's launch values refuse it.
      expect(verify(r, { ...base, measurements: [Buffer.from(recs[other].measurement, 'hex')] }).ok).toBe(false);
      expect(verify(r, { ...base, hostData: hostData[other], measurements: [Buffer.from(recs[k].measurement, 'hex')] }).ok).toBe(false);
    }
    // REPORT_ID: one per guest, the same in each of its reports.
    const id = (r: GuestAnswer) => parseReport(r.report!).reportId.toString('hex');
    expect(id(ra2)).toBe(id(ra));
    expect(id(rb)).not.toBe(id(ra));
    expect(parseReport(ra2.report!).reportData).toEqual(nonces.b);
  }, 300_000);

  it('a process names a guest per open with /dev/sev-guest/<vm> (simGuestDevice); the path wins over SEVKIT_SIM_GUEST', async () => {
    const nonce = crypto.randomBytes(64);
    const r = await report({ SEVKIT_SIM_GUEST: names.a }, nonce, simGuestDevice(names.b));
    expect(r.stderr + String(r.code)).toBe('0');
    expect(parseReport(r.report!).measurement.toString('hex')).toBe(recs.b.measurement);
    expect(verify(r, { reportData: nonce, measurements: [Buffer.from(recs.b.measurement, 'hex')] }).ok).toBe(true);
    expect(() => simGuestDevice('../x')).toThrow(SimGuestUnknownError);
  }, 300_000);

  it('an unknown, malformed or over-long guest name has no guest device (ENOENT at open), never a report of another launch', async () => {
    const nonce = crypto.randomBytes(64);
    const cases = await Promise.all([
      report({ SEVKIT_SIM_GUEST: `nope-${run}` }, nonce),
      report({ SEVKIT_SIM_GUEST: '..' }, nonce),
      report({ SEVKIT_SIM_GUEST: 'x'.repeat(129) }, nonce),
      report({}, nonce, '/dev/sev-guest/no-such-vm'),
    ]);
    for (const r of cases) {
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^sevkit: \/dev\/sev-guest(\/no-such-vm)?: open failed: ENOENT, no SNP guest device/);
      expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    }
    // A launch that went away under an open device: ENODEV from the driver, no report.
    const gone = sim.daemon.snpGuest.ioctl({
      msgVersion: 1,
      request: GuestIoctl.SNP_GET_REPORT,
      req: Buffer.alloc(96),
      respNull: false,
      guest: `gone-${run}`,
    });
    expect(gone.errno).toBe(os.constants.errno.ENODEV);
    expect(gone.resp.length).toBe(0);
  }, 300_000);

  it("no SEVKIT_SIM_GUEST: snp-guest.json's identity, as before (linkSnpLaunch still sets it)", async () => {
    const measurement = crypto.createHash('sha384').update(`default guest ${run}`).digest();
    writeSnpGuestConfig(sim.stateDir, { measurement: measurement.toString('hex') });
    const nonce = crypto.randomBytes(64);
    const r = await report({ SEVKIT_SIM_GUEST: '' }, nonce);
    expect(r.stderr + String(r.code)).toBe('0');
    expect(verify(r, { reportData: nonce, measurements: [measurement] }).ok).toBe(true);
    const p = parseReport(r.report!);
    expect(policyOf(r.report!)).toBe(0x30000n);
    expect(p.hostData).toEqual(Buffer.alloc(32));
    // linkSnpLaunch: the unnamed guest now reports VM b's launch.
    linkSnpLaunch(sim.stateDir, names.b);
    const r2 = await report({}, nonce);
    expect(parseReport(r2.report!).measurement.toString('hex')).toBe(recs.b.measurement);
    expect(policyOf(r2.report!)).toBe(policies.b);
    // The named guests' REPORT_IDs are their own, not the unnamed guest's.
    const named = guest.report(Buffer.alloc(64), 0, names.b);
    expect(parseReport(named).reportId).not.toEqual(p.reportId);
  }, 300_000);

  it("configfs-tsm follows the same identity: a tree for VM a gives VM a's report", async () => {
    const root = path.join(dir, 'tsm-a');
    const tree = new SimTsmTree(root, guest, names.a);
    const nonce = crypto.randomBytes(64);
    const r = await tsmReport({ reportData: nonce, vmpl: 0 }, { root, io: tree });
    const p = parseReport(r.report);
    expect(p.measurement.toString('hex')).toBe(recs.a.measurement);
    expect(p.hostData).toEqual(hostData.a);
    const orphan = new SimTsmTree(path.join(dir, 'tsm-x'), guest, `nope-${run}`);
    await expect(tsmReport({ reportData: nonce, vmpl: 0 }, { root: orphan.root, io: orphan })).rejects.toThrow(/ENODEV/);
  }, 120_000);

  it('an ID block from `sevkit snp id-block` (ID key + author key): the guest reports its key digests, FAMILY_ID, IMAGE_ID, GUEST_SVN, AUTHOR_KEY_EN; the verifier pins them', async () => {
    const fw = path.join(dir, 'OVMF.c.fd');
    fs.writeFileSync(fw, Buffer.concat([Buffer.alloc(60 * 1024, 0xc3), fs.readFileSync(AMDSEV_SUFFIX)]));
    const keyFile = (label: string) => {
      const f = path.join(dir, `${label}.pem`);
      const k = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
      fs.writeFileSync(f, k.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
      return f;
    };
    const [idKey, authorKey] = [keyFile('id'), keyFile('author')];
    const d = await runCli(['snp', 'digest', '--firmware', fw, '--vcpus', '1', '--vcpu-type', 'EPYC-v4'], { timeoutMs: 120_000 });
    expect(d.stderr + String(d.code)).toBe('0');
    const ld = d.stdout.trim();
    const familyId = crypto.randomBytes(16);
    const imageId = crypto.randomBytes(16);
    const [block, auth] = [path.join(dir, 'id-block.b64'), path.join(dir, 'id-auth.b64')];
    const idb = await runCli(
      [
        'snp',
        'id-block',
        '--id-key',
        idKey,
        '--author-key',
        authorKey,
        '--digest',
        ld,
        '--policy',
        '0x30000',
        '--family-id',
        familyId.toString('hex'),
        '--image-id',
        imageId.toString('hex'),
        '--guest-svn',
        '9',
        '--out-block',
        block,
        '--out-auth',
        auth,
        '--json',
      ],
      { timeoutMs: 120_000 },
    );
    expect(idb.stderr + String(idb.code)).toBe('0');
    const printed = JSON.parse(idb.stdout) as { idKeyDigest: string; authorKeyDigest: string; authorKeyEnabled: boolean };
    expect(printed.authorKeyEnabled).toBe(true);
    const name = `snpc-${run}`;
    const idBlock = fs.readFileSync(block, 'utf8');
    const idAuth = fs.readFileSync(auth, 'utf8');
    vms.push(await sup.launch({ name, firmware: fw, vcpus: 1, snp: { policy: 0x30000n, idBlock, idAuth, authorKeyEnabled: true } }));

    const nonce = crypto.randomBytes(64);
    const check = (r: GuestAnswer) => {
      expect(r.stderr + String(r.code)).toBe('0');
      const p = parseReport(r.report!);
      expect(p.idKeyDigest.toString('hex')).toBe(printed.idKeyDigest);
      expect(p.authorKeyDigest.toString('hex')).toBe(printed.authorKeyDigest);
      expect(p.keyInfo.authorKeyEn).toBe(true);
      expect(p.familyId).toEqual(familyId);
      expect(p.imageId).toEqual(imageId);
      expect(p.guestSvn).toBe(9);
      expect(p.measurement.toString('hex')).toBe(ld);
      return r;
    };
    // Per guest, and through linkSnpLaunch into snp-guest.json (a process that names no guest).
    const perGuest = check(await report({ SEVKIT_SIM_GUEST: name }, nonce));
    linkSnpLaunch(sim.stateDir, name);
    check(await report({}, nonce));

    const pin = {
      reportData: nonce,
      measurements: [Buffer.from(ld, 'hex')],
      idKeyDigests: [Buffer.from(printed.idKeyDigest, 'hex')],
      authorKeyDigests: [Buffer.from(printed.authorKeyDigest, 'hex')],
      familyId,
      imageId,
      minGuestSvn: 9,
    };
    const ok = verify(perGuest, pin);
    expect(ok.failed).toEqual([]);
    expect(ok.ok).toBe(true);
    // Another ID key or author key pinned: refused; a guest launched without an ID block: refused.
    expect(verify(perGuest, { ...pin, idKeyDigests: [crypto.randomBytes(48)] }).ok).toBe(false);
    expect(verify(perGuest, { ...pin, authorKeyDigests: [crypto.randomBytes(48)] }).ok).toBe(false);
    expect(verify(perGuest, { ...pin, minGuestSvn: 10 }).ok).toBe(false);
    const plain = await report({ SEVKIT_SIM_GUEST: names.b }, nonce);
    expect(parseReport(plain.report!).idKeyDigest).toEqual(Buffer.alloc(48));
    expect(parseReport(plain.report!).keyInfo.authorKeyEn).toBe(false);
    expect(verify(plain, { reportData: nonce, idKeyDigests: pin.idKeyDigests }).ok).toBe(false);

    // The author's signature over the ID key broken: BAD_SIGNATURE at LAUNCH_FINISH, no launch recorded.
    const badAuth = Buffer.from(idAuth, 'base64');
    badAuth[0x680] ^= 1; // ID_KEY_SIG, low byte of R
    const err = await sup
      .launch({ name: `snpbad-${run}`, firmware: fw, vcpus: 1, snp: { policy: 0x30000n, idBlock, idAuth: badAuth, authorKeyEnabled: true } })
      .catch((e: unknown) => e);
    expect((err as Error).message).toContain("sev_snp_launch_finish: SNP_LAUNCH_FINISH ret=-5 fw_error=10 'Bad signature'");
    expect(fs.existsSync(path.join(sim.stateDir, 'guests', `snpbad-${run}`, SNP_LAUNCH_RECORD))).toBe(false);
    // snp-guest.json's new fields are checked like the others.
    expect(() => writeSnpGuestConfig(sim.stateDir, { idKeyDigest: 'ab' })).toThrow(/idKeyDigest must be 48 bytes of hex/);
    expect(() => writeSnpGuestConfig(sim.stateDir, { authorKeyEn: 'yes' as unknown as boolean })).toThrow(/authorKeyEn must be true or false/);
  }, 300_000);

  it('a stopped VM takes its identity with it', async () => {
    await vms[0]!.stop({ timeoutMs: 30_000 });
    const r = await report({ SEVKIT_SIM_GUEST: names.a }, crypto.randomBytes(64));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/open failed: ENOENT/);
  }, 300_000);
});
