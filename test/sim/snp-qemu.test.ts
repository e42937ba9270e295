/** The simulator's QEMU wrapper playing QEMU >= 9.1's SEV-SNP part, and the Supervisor launching SNP guests on it. */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { VECTORS } from '../helpers/cli.js';
import { parseQemuArgs, rewriteForRealQemu } from '../../lib/sim/qemu/argv.js';
import { Supervisor, VmExitedError, VmSnpError, VmStateError } from '../../lib/vm/index.js';
import { computeSnpDigest } from '../../lib/snp/digest.js';
import { createIdBlock } from '../../lib/snp/idblock.js';
import { SNP_LAUNCH_RECORD, type SnpLaunchRecord } from '../../lib/sim/qemu/snp-guest.js';
import { filesUnder, processesMentioning, tmpRunRoot } from '../vm/helpers.js';
import { makeSimEnv, type SimEnv } from '../vm/simenv.js';

const AMDSEV_SUFFIX = path.join(VECTORS, 'sev-snp-measure/ovmf_AmdSev_suffix.bin');
const REAL_QEMU = '/usr/bin/qemu-system-x86_64';
const DEBIAN_OVMF = '/usr/share/ovmf/OVMF.fd';
const V91 = { qemuVersion: '9.1.0' };
const snpArgs = (obj: string, extra: string[] = []) => [
  '-object',
  obj,
  '-machine',
  'q35,confidential-guest-support=sev0,memory-backend=ram1',
  '-object',
  'memory-backend-memfd,id=ram1,size=512M,share=true',
  '-bios',
  '/fw.fd',
  ...extra,
];

describe('sev-snp-guest as the wrapper reads it', () => {
  it('takes every QEMU 9.1 property', () => {
    const idBlock = Buffer.alloc(96, 1).toString('base64');
    const p = parseQemuArgs(
      snpArgs(
        `sev-snp-guest,id=sev0,cbitpos=51,reduced-phys-bits=1,kernel-hashes=on,policy=0x70000,id-block=${idBlock},id-auth=${Buffer.alloc(100, 2).toString('base64')},author-key-enabled=on,host-data=${Buffer.alloc(32, 3).toString('base64')},guest-visible-workarounds=${Buffer.alloc(16).toString('base64')},vcek-disabled=on,sev-device=/dev/sev`,
      ),
      V91,
    );
    expect(p.sev).toBeUndefined();
    expect(p.snp).toMatchObject({
      id: 'sev0',
      policy: 0x70000n,
      cbitpos: 51,
      reducedPhysBits: 1,
      kernelHashes: true,
      authorKeyEnabled: true,
      vcekDisabled: true,
      sevDevice: '/dev/sev',
    });
    expect(p.snp!.idBlock).toEqual(Buffer.alloc(96, 1));
    // KVM copies a whole page: the short id-auth is zero-padded to 4096.
    expect(p.snp!.idAuth).toEqual(Buffer.concat([Buffer.alloc(100, 2), Buffer.alloc(3996)]));
    expect(p.snp!.hostData).toEqual(Buffer.alloc(32, 3));
    expect(p.firmwareFrom).toBe('bios');
    expect(parseQemuArgs(snpArgs('sev-snp-guest,id=sev0,reduced-phys-bits=1'), V91).snp!.policy).toBe(0x30000n);
  });

  it("refuses what QEMU refuses, with QEMU's texts; Debian's 7.2 knows no sev-snp-guest", () => {
    const obj = 'sev-snp-guest,id=sev0,cbitpos=51,reduced-phys-bits=1';
    expect(() => parseQemuArgs(snpArgs(obj))).toThrow(`-object ${obj}: Parameter 'qom-type' does not accept value 'sev-snp-guest'`);
    expect(() => parseQemuArgs(snpArgs(`${obj},dh-cert-file=/x`), V91)).toThrow("Property 'sev-snp-guest.dh-cert-file' not found");
    expect(() => parseQemuArgs(snpArgs(`${obj},legacy-vm-type=on`), V91)).toThrow("Property 'sev-snp-guest.legacy-vm-type' not found");
    expect(() => parseQemuArgs(snpArgs('sev-snp-guest,id=sev0,cbitpos=51'), V91)).toThrow("Parameter 'reduced-phys-bits' is missing");
    expect(() => parseQemuArgs(snpArgs(`${obj},id-block=${Buffer.alloc(95).toString('base64')}`), V91)).toThrow('parameter length of 95 not equal to 96');
    expect(() => parseQemuArgs(snpArgs(`${obj},id-auth=${Buffer.alloc(4097).toString('base64')}`), V91)).toThrow(
      'parameter length:ID_AUTH 4097 exceeds max of 4096',
    );
    expect(() => parseQemuArgs(snpArgs(`${obj},host-data=${Buffer.alloc(31).toString('base64')}`), V91)).toThrow('parameter length of 31 not equal to 32');
    expect(() => parseQemuArgs(snpArgs(`${obj},host-data=@@@@`), V91)).toThrow('Base64 data contains invalid characters');
    expect(() => parseQemuArgs(snpArgs(`${obj},policy=banana`), V91)).toThrow("Parameter 'policy' expects integer");
    expect(() => parseQemuArgs(snpArgs(`${obj},author-key-enabled=maybe`), V91)).toThrow("Parameter 'author-key-enabled' expects 'on' or 'off'");
    // A u64 policy is read whole (no u32 truncation).
    expect(parseQemuArgs(snpArgs(`${obj},policy=0x100030000`), V91).snp!.policy).toBe(0x100030000n);
  });

  it('rewrites for the real 7.2: no sev-snp-guest, no confidential-guest-support, a CPU model 7.2 knows; memfd and -bios kept', () => {
    const p = parseQemuArgs(
      [...snpArgs('sev-snp-guest,id=sev0,cbitpos=51,reduced-phys-bits=1'), '-cpu', 'EPYC-v4', '-qmp', 'unix:/r/q.sock,server,nowait'],
      V91,
    );
    const out = rewriteForRealQemu(p, '/r/.real.sock', 'tcg');
    expect(out.join(' ')).not.toMatch(/sev-snp-guest|confidential-guest-support/);
    expect(out).toEqual([
      '-machine',
      'q35,memory-backend=ram1',
      '-object',
      'memory-backend-memfd,id=ram1,size=512M,share=true',
      '-bios',
      '/fw.fd',
      '-cpu',
      'EPYC-v3',
      '-qmp',
      'unix:/r/.real.sock,server=on,wait=off',
    ]);
  });
});

describe('SNP guests launched by the Supervisor on the simulator', () => {
  let sim: SimEnv;
  let root: string;
  let firmware: string;
  const run = crypto.randomBytes(3).toString('hex');
  const env = (extra: NodeJS.ProcessEnv = {}) => ({ ...sim.env, SEVKIT_SIM_QEMU_VERSION: '9.2.0', ...extra });
  const record = (name: string) => path.join(sim.stateDir, 'guests', name, SNP_LAUNCH_RECORD);

  beforeAll(async () => {
    sim = await makeSimEnv({ realQemu: 'none', private: true });
    root = tmpRunRoot('snpsim');
    // -bios takes whole 64 KiB: the AmdSev fixture's 4 KiB tail (footer table, SEV metadata) at the end of 64 KiB.
    firmware = path.join(root, 'OVMF.snp.fd');
    fs.writeFileSync(firmware, Buffer.concat([Buffer.alloc(60 * 1024), fs.readFileSync(AMDSEV_SUFFIX)]));
  });
  afterAll(() => {
    expect(processesMentioning(root)).toEqual([]);
    fs.rmSync(firmware, { force: true });
    expect(filesUnder(root)).toEqual([]);
    fs.rmSync(root, { recursive: true, force: true });
    sim?.cleanup();
  });

  it('starts without the pre-launch step, records the launch digest of exactly what it loaded, and stops cleanly', async () => {
    const sup = new Supervisor({ qemu: sim.qemu, env: env(), runRoot: root });
    const name = `snp-${run}`;
    const hostData = crypto.randomBytes(32);
    const states: string[] = [];
    const vm = await sup.launch({ name, firmware, vcpus: 2, snp: { policy: 0x30000, hostData } });
    vm.on('state', (s: string) => states.push(s));
    expect(vm.state).toBe('running');
    expect(vm.snpInfo).toMatchObject({ sevType: 'sev-snp', enabled: true, state: 'running', snpPolicy: 0x30000n });
    // No host-side measurement or secret for SNP: refused before QMP is asked.
    await expect(vm.measurement()).rejects.toThrow(VmStateError);
    await expect(vm.injectSecret({ packetHeader: Buffer.alloc(52).toString('base64'), secret: 'AAAA' })).rejects.toThrow(/cannot inject a secret/);
    // QEMU 9.1's own answers when asked anyway.
    await expect(vm.qmpClient!.querySevLaunchMeasure()).rejects.toThrow('SEV launch measurement is not available');
    await expect(vm.qmpClient!.sevInjectLaunchSecret({ 'packet-header': 'AAAA', secret: 'AAAA' })).rejects.toThrow('SEV: Not in correct state. (LSECRET) 3');
    // The greeting is honest: the version played and what runs underneath.
    expect(vm.qmpClient!.greeting.QMP.version).toEqual({
      qemu: { major: 9, minor: 2, micro: 0 },
      package: 'sevkit-sim (SIMULATED SEV/SEV-SNP part played as QEMU 9.2.0, no VM)',
    });
    const rec = JSON.parse(fs.readFileSync(record(name), 'utf8')) as SnpLaunchRecord;
    const want = computeSnpDigest({ firmware: fs.readFileSync(firmware), vcpus: 2, vcpuType: 'EPYC-v4', guestFeatures: 1n });
    expect(rec.measurement).toBe(want.digest.toString('hex'));
    expect(rec).toMatchObject({
      vcpus: 2,
      vcpuSig: '0x800f12',
      guestFeatures: '0x1',
      policy: '0x30000',
      hostData: hostData.toString('hex'),
      idKeyDigest: '0'.repeat(96),
      qemuVersion: '9.2.0',
      kernelHashes: false,
    });
    expect(rec.note).toMatch(/SIMULATED/);
    expect(fs.statSync(record(name)).mode & 0o777).toBe(0o600);
    // One more vCPU, another digest: the record is of this launch.
    const vm3 = await sup.launch({ name: `snp3-${run}`, firmware, vcpus: 3, snp: {} });
    const rec3 = JSON.parse(fs.readFileSync(record(`snp3-${run}`), 'utf8')) as SnpLaunchRecord;
    expect(rec3.measurement).toBe(computeSnpDigest({ firmware: fs.readFileSync(firmware), vcpus: 3, vcpuType: 'EPYC-v4' }).digest.toString('hex'));
    expect(rec3.measurement).not.toBe(rec.measurement);
    const dir = vm.runDir!;
    await Promise.all([vm.stop({ timeoutMs: 20_000 }), vm3.stop({ timeoutMs: 20_000 })]);
    expect([vm.state, vm3.state]).toEqual(['stopped', 'stopped']);
    expect(states).toEqual(['stopped']);
    expect(fs.existsSync(dir)).toBe(false);
    expect(fs.existsSync(record(name))).toBe(false);
    expect(processesMentioning(dir)).toEqual([]);
  });

  it('measured direct boot: the kernel-hashes page of the -kernel/-initrd/-append it loads is in the digest', async () => {
    const sup = new Supervisor({ qemu: sim.qemu, env: env(), runRoot: root });
    const kernel = path.join(root, 'bzImage');
    const initrd = path.join(root, 'initrd');
    fs.writeFileSync(kernel, crypto.randomBytes(5000));
    fs.writeFileSync(initrd, crypto.randomBytes(3000));
    const append = 'console=ttyS0 root=/dev/vda ro';
    const name = `kh-${run}`;
    try {
      const vm = await sup.launch({ name, firmware, vcpus: 2, kernel, initrd, append, snp: { kernelHashes: true } });
      const rec = JSON.parse(fs.readFileSync(record(name), 'utf8')) as SnpLaunchRecord;
      const fwBytes = fs.readFileSync(firmware);
      const want = computeSnpDigest({
        firmware: fwBytes,
        vcpus: 2,
        vcpuType: 'EPYC-v4',
        kernel: { kernel: fs.readFileSync(kernel), initrd: fs.readFileSync(initrd), cmdline: append },
      });
      expect(rec.kernelHashes).toBe(true);
      expect(rec.measurement).toBe(want.digest.toString('hex'));
      // Another cmdline is another measurement: the record is of what was loaded.
      expect(
        computeSnpDigest({
          firmware: fwBytes,
          vcpus: 2,
          vcpuType: 'EPYC-v4',
          kernel: { kernel: fs.readFileSync(kernel), initrd: fs.readFileSync(initrd), cmdline: `${append} ` },
        }).digest.toString('hex'),
      ).not.toBe(rec.measurement);
      await vm.stop({ timeoutMs: 20_000 });
    } finally {
      fs.rmSync(kernel, { force: true });
      fs.rmSync(initrd, { force: true });
    }
  });

  it('survives its supervisor: vm.json keeps the SNP spec without the launch blobs, a new supervisor adopts it as SNP', async () => {
    const sup = new Supervisor({ qemu: sim.qemu, env: env(), runRoot: root });
    const name = `adopt-${run}`;
    const vm = await sup.launch({ name, firmware, snp: { policy: 0x30000n, hostData: Buffer.alloc(32, 5) } });
    const rec = JSON.parse(fs.readFileSync(path.join(vm.runDir!, 'vm.json'), 'utf8')) as { state: string; spec: { snp: unknown } };
    expect(rec.state).toBe('running');
    expect(rec.spec.snp).toEqual({ policy: 0x30000 }); // a bigint policy recorded as a number; host data not kept
    await sup.close({ keepVms: true });
    const next = new Supervisor({ qemu: sim.qemu, env: env(), runRoot: root });
    const { adopted } = await next.adopt();
    const again = adopted.find((v) => v.name === name)!;
    expect(again.state).toBe('running');
    await expect(again.measurement()).rejects.toThrow(/SEV-SNP guest: the host has no launch measurement/);
    expect(fs.existsSync(record(name))).toBe(true); // the guest still runs
    await next.close();
    expect(again.state).toBe('stopped');
    expect(fs.existsSync(record(name))).toBe(false);
  });

  it('refuses a QEMU that plays 7.2 with one line, before starting anything', async () => {
    const sup = new Supervisor({ qemu: sim.qemu, env: env({ SEVKIT_SIM_QEMU_VERSION: '' }), runRoot: root });
    const err = await sup.launch({ name: `old-${run}`, firmware, snp: {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VmSnpError);
    expect((err as VmSnpError).code).toBe('ERR_VM_SNP_QEMU');
    expect((err as Error).message).toBe(`QEMU 7.2.0 (${sim.qemu}) cannot launch SEV-SNP guests: the sev-snp-guest object needs QEMU >= 9.1`);
    expect(filesUnder(root).filter((f) => f.startsWith('old-'))).toEqual([]);
  });

  it('the firmware refuses a policy at SNP_LAUNCH_START (SMT not allowed on an SMT host); QEMU exits', async () => {
    const sup = new Supervisor({ qemu: sim.qemu, env: env(), runRoot: root });
    const err = await sup.launch({ name: `nosmt-${run}`, firmware, snp: { policy: 0x20000 } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VmExitedError);
    expect((err as Error).message).toContain("sev_snp_launch_start: SNP_LAUNCH_START ret=-5 fw_error=7 'Policy is not allowed'");
  });

  it('an ID block for this launch passes LAUNCH_FINISH and its key digests are recorded; a wrong LD or a broken signature is refused', async () => {
    const sup = new Supervisor({ qemu: sim.qemu, env: env(), runRoot: root });
    const ld = computeSnpDigest({ firmware: fs.readFileSync(firmware), vcpus: 1, vcpuType: 'EPYC-v4' }).digest;
    const idKey = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    const authorKey = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    const good = createIdBlock({ ld, policy: 0x30000n, familyId: Buffer.alloc(16, 0xfa), guestSvn: 7 }, idKey, authorKey);
    const name = `idb-${run}`;
    const vm = await sup.launch({ name, firmware, snp: { idBlock: good.idBlock, idAuth: good.idAuth, authorKeyEnabled: true } });
    const rec = JSON.parse(fs.readFileSync(record(name), 'utf8')) as SnpLaunchRecord;
    expect(rec).toMatchObject({
      idKeyDigest: good.idKeyDigest.toString('hex'),
      authorKeyDigest: good.authorKeyDigest!.toString('hex'),
      authorKeyEn: true,
      familyId: 'fa'.repeat(16),
      guestSvn: 7,
    });
    await vm.stop({ timeoutMs: 20_000 });

    // Made for 2 vCPUs, launched with 1: the firmware's BAD_MEASUREMENT, and QEMU exits.
    const ld2 = computeSnpDigest({ firmware: fs.readFileSync(firmware), vcpus: 2, vcpuType: 'EPYC-v4' }).digest;
    const wrong = createIdBlock({ ld: ld2 }, idKey);
    const err = await sup.launch({ name: `idbad-${run}`, firmware, snp: { idBlock: wrong.idBlock, idAuth: wrong.idAuth } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VmExitedError);
    expect((err as Error).message).toContain("sev_snp_launch_finish: SNP_LAUNCH_FINISH ret=-5 fw_error=11 'Bad measurement'");
    // A tampered block: the ID key's signature no longer verifies.
    const tampered = Buffer.from(good.idBlock);
    tampered[0x40] ^= 1; // IMAGE_ID
    const err2 = await sup.launch({ name: `idsig-${run}`, firmware, snp: { idBlock: tampered, idAuth: good.idAuth } }).catch((e: unknown) => e);
    expect((err2 as Error).message).toContain("fw_error=10 'Bad signature'");
    expect(fs.existsSync(record(`idbad-${run}`))).toBe(false);
  });

  it('an ID block made for another policy: POLICY_FAILURE at LAUNCH_FINISH (the wrapper run directly; the Supervisor refuses it up front)', async () => {
    const ld = computeSnpDigest({ firmware: fs.readFileSync(firmware), vcpus: 1, vcpuType: 'EPYC-v4' }).digest;
    const idKey = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    const b = createIdBlock({ ld, policy: 0x70000n }, idKey);
    const sock = path.join(root, 'pol.sock');
    const args = [
      '-object',
      `sev-snp-guest,id=sev0,cbitpos=51,reduced-phys-bits=1,policy=0x30000,id-block=${b.idBlock.toString('base64')},id-auth=${b.idAuth.toString('base64')}`,
      '-machine',
      'q35,confidential-guest-support=sev0',
      '-cpu',
      'EPYC-v4',
      '-bios',
      firmware,
      '-qmp',
      `unix:${sock},server,nowait`,
    ];
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      const c = spawn(sim.qemu, args, { env: env(), stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      c.on('error', reject);
      c.on('close', (code) => resolve({ code, stderr }));
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("qemu-system-x86_64: sev_snp_launch_finish: SNP_LAUNCH_FINISH ret=-5 fw_error=7 'Policy is not allowed'");
    expect(fs.existsSync(sock)).toBe(false);
  });

  it('the wrapper says which QEMU it plays and what runs the VM', async () => {
    const out = await new Promise<string>((resolve, reject) => {
      const c = spawn(sim.qemu, ['-version'], { env: env(), stdio: ['ignore', 'pipe', 'inherit'] });
      let s = '';
      c.stdout.on('data', (d: Buffer) => (s += d.toString()));
      c.on('error', reject);
      c.on('close', () => resolve(s));
    });
    expect(out).toBe('QEMU emulator version 9.2.0 (sevkit-sim: SIMULATED SEV/SEV-SNP part played as QEMU 9.2.0; the VM runs on no real QEMU (VM-less))\n');
  });

  it.skipIf(!fs.existsSync(REAL_QEMU) || !fs.existsSync(DEBIAN_OVMF))("runs on Debian's real QEMU 7.2 (TCG) without the SNP options", async () => {
    const sup = new Supervisor({ qemu: sim.qemu, env: env({ SEVKIT_REAL_QEMU: REAL_QEMU }), runRoot: root });
    const name = `real-${run}`;
    const vm = await sup.launch({ name, firmware: DEBIAN_OVMF, vcpus: 2, memMb: 256, snp: {} });
    expect(vm.state).toBe('running');
    const g = vm.qmpClient!.greeting.QMP.version;
    expect(g.qemu).toEqual({ major: 9, minor: 2, micro: 0 });
    expect(g.package).toMatch(/\+ sevkit-sim \(SIMULATED SEV\/SEV-SNP part played as QEMU 9\.2\.0 over the real QEMU 7\.2\.\d+\)$/);
    // The real QEMU answers the rest: a 7.2 machine with the memfd backend, running.
    expect(await vm.qmpClient!.execute('qom-get', { path: '/machine', property: 'type' })).toBe('pc-q35-7.2-machine');
    expect(await vm.qmpClient!.queryStatus()).toMatchObject({ status: 'running' });
    const dir = vm.runDir!;
    await vm.stop({ timeoutMs: 20_000 });
    expect(vm.state).toBe('stopped');
    expect(processesMentioning(dir)).toEqual([]);
  });
});

describe('sevkit sim --qemu-version', () => {
  it('runs CMD with the wrapper playing that QEMU, and says so', async () => {
    const { runCli } = await import('../helpers/cli.js');
    const r = await runCli(['sim', '--qemu-version', '9.2.0', '--', 'qemu-system-x86_64', '-version'], { timeoutMs: 120_000 });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^QEMU emulator version 9\.2\.0 \(sevkit-sim: SIMULATED SEV\/SEV-SNP part played as QEMU 9\.2\.0; the VM runs on /);
    expect(r.stderr).toContain("sevkit sim: the QEMU wrapper plays QEMU 9.2.0's SEV/SEV-SNP part (SIMULATED); the VM runs on the real QEMU");
    const bad = await runCli(['sim', '--qemu-version', '9.2', '--', 'true'], { timeoutMs: 120_000 });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe("sevkit: --qemu-version must be M.m.u (e.g. 9.2.0), got '9.2'\n");
  });
});
