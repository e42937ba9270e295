/**
 * The whole confidential launch through the simulator's QEMU wrapper: the
 * guest owner's session and expected measurement come from lib/launch, the
 * host side is the Supervisor, the firmware side is the simulated platform.
 * Runs against the sim daemon when the global setup provides one
 * (SEVKIT_SIM_SOCKET), otherwise against the wrapper's in-process firmware
 * over a private simulated state dir.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Supervisor, VmExitedError, VmSecretError, VmStateError, type ConfidentialVm } from '../../lib/vm/index.js';
import { QmpCommandError } from '../../lib/qmp/index.js';
import { buildSecret, computeLaunchDigest, createSession, parseSecretTable, verifyMeasurement, type LaunchSession } from '../../lib/launch/index.js';
import { VECTORS } from '../helpers/cli.js';
import { filesUnder, processesMentioning, tmpRunRoot } from './helpers.js';
import { makeSimEnv, type SimEnv } from './simenv.js';

const DEBIAN_OVMF = '/usr/share/OVMF/OVMF_CODE.fd';
/** 4 KiB AmdSev OVMF suffix: secret area 0x810000/0xc00, hashes table, AP reset 0x80b004 (VM-less mode only). */
const AMDSEV = path.join(VECTORS, 'sev-snp-measure/ovmf_AmdSev_suffix.bin');
const REAL_QEMU = '/usr/bin/qemu-system-x86_64';
const run = crypto.randomBytes(3).toString('hex');

let sim: SimEnv;
let root: string;
let pdh: Buffer;

beforeAll(async () => {
  sim = await makeSimEnv({ realQemu: 'none' });
  root = tmpRunRoot('simflow');
  pdh = fs.readFileSync(path.join(sim.stateDir, 'pdh.cert'));
});

afterAll(() => {
  expect(processesMentioning(root)).toEqual([]);
  expect(filesUnder(root)).toEqual([]);
  fs.rmSync(root, { recursive: true, force: true });
  sim?.cleanup();
});

function supervisor(extra: Partial<ConstructorParameters<typeof Supervisor>[0]> = {}, env: NodeJS.ProcessEnv = sim.env) {
  return new Supervisor({ qemu: sim.qemu, env, runRoot: root, launchTimeoutMs: 30_000, ...extra });
}

function sevSpec(name: string, session: LaunchSession, firmware: string, extra: Record<string, unknown> = {}) {
  return { name, firmware, memMb: 64, sev: { policy: session.policy.value, godh: session.godhB64, session: session.sessionB64 }, ...extra };
}

function secretFile(name: string): string {
  return path.join(sim.stateDir, 'guests', name, 'launch-secret.bin');
}

async function verified(vm: ConfidentialVm, s: LaunchSession, launch: Parameters<typeof computeLaunchDigest>[0]) {
  const m = await vm.measurement();
  const verdict = verifyMeasurement({
    measurement: m.launchMeasure,
    sevInfo: { apiMajor: m.sevInfo['api-major'], apiMinor: m.sevInfo['api-minor'], buildId: m.sevInfo['build-id'], policy: m.sevInfo.policy },
    expected: { policy: s.policy, tik: s.tik, launch },
  });
  return { m, verdict };
}

describe('SEV launch through the simulator (VM-less QEMU)', () => {
  it('SEV: owner verifies the measurement, secret lands at the firmware secret area, CPUs start', async () => {
    const sup = supervisor();
    const s = createSession(pdh, 0x1);
    const name = `sev-${run}`;
    const vm = await sup.launch(sevSpec(name, s, AMDSEV));
    expect(vm.state).toBe('awaiting-secret');
    const firmware = fs.readFileSync(AMDSEV);
    const { m, verdict } = await verified(vm, s, { firmware });
    expect(m.sevInfo).toMatchObject({ enabled: true, state: 'launch-secret', policy: 1 });
    expect(verdict.match).toBe(true);
    // The digest of a SEV guest is the SHA-256 of the firmware file.
    expect(verdict.digest).toEqual(crypto.createHash('sha256').update(firmware).digest());

    // A wrong TIK or another firmware does not verify.
    const wrongFw = Buffer.from(firmware);
    wrongFw[0] ^= 1;
    expect((await verified(vm, s, { firmware: wrongFw })).verdict.match).toBe(false);

    expect(vm.firmwareSecretArea).toEqual({ base: 0x810000, size: 0xc00 });
    const built = buildSecret({
      tek: s.tek,
      tik: s.tik,
      measurement: Buffer.from(m.launchMeasure, 'base64'),
      entries: [{ guid: '736869e5-84f0-4973-92ec-06879ce3da0b', data: Buffer.from('MY-LUKS-PASSPHRASE') }],
      layout: 'aleph',
    });
    await vm.injectSecret({ packetHeader: built.header.toString('base64'), secret: built.payload.toString('base64') });
    expect(vm.state).toBe('running');
    const landed = fs.readFileSync(secretFile(name));
    expect(fs.statSync(secretFile(name)).mode & 0o777).toBe(0o600);
    const table = parseSecretTable(landed);
    expect(table.entries.map((e) => e.guid)).toEqual(['736869e5-84f0-4973-92ec-06879ce3da0b']);
    expect(Buffer.from(table.entries[0]!.data).toString('utf8').replace(/\0+$/, '')).toBe('MY-LUKS-PASSPHRASE');
    const qmpSev = await vm.qmpClient!.querySev();
    expect(qmpSev.state).toBe('running'); // LAUNCH_FINISH happened at cont
    expect((await vm.qmpClient!.queryStatus()).status).toBe('running');
    await vm.stop();
    expect(vm.state).toBe('stopped');
  });

  it('SEV-ES with 2 vCPUs: the VMSAs are measured (legacy VMSA, EPYC-v4)', async () => {
    const sup = supervisor();
    const s = createSession(pdh, 0x5);
    const vm = await sup.launch(sevSpec(`es-${run}`, s, AMDSEV, { vcpus: 2, cpu: 'EPYC-v4' }));
    const firmware = fs.readFileSync(AMDSEV);
    const good = await verified(vm, s, { firmware, es: { numCpus: 2, vcpuType: 'EPYC-v4', vmType: 'legacy' } });
    expect(good.verdict.match).toBe(true);
    // Not the plain-SEV digest, not the 1-vCPU one, not the init2 VMSA.
    expect((await verified(vm, s, { firmware })).verdict.match).toBe(false);
    expect((await verified(vm, s, { firmware, es: { numCpus: 1, vcpuType: 'EPYC-v4', vmType: 'legacy' } })).verdict.match).toBe(false);
    expect((await verified(vm, s, { firmware, es: { numCpus: 2, vcpuType: 'EPYC-v4', vmType: 'init2' } })).verdict.match).toBe(false);
    const built = buildSecret({ tek: s.tek, tik: s.tik, measurement: Buffer.from(good.m.launchMeasure, 'base64'), plaintext: Buffer.from('0123456789abcdef') });
    await vm.injectSecret({ packetHeader: built.header.toString('base64'), secret: built.payload.toString('base64') });
    expect(fs.readFileSync(secretFile(`es-${run}`)).toString()).toBe('0123456789abcdef');
    await vm.stop();
  });

  it('each launch gets a fresh MNONCE; both measurements verify', async () => {
    const sup = supervisor();
    const s = createSession(pdh, 0x1);
    const [a, b] = await Promise.all([sup.launch(sevSpec(`n1-${run}`, s, AMDSEV)), sup.launch(sevSpec(`n2-${run}`, s, AMDSEV))]);
    const firmware = fs.readFileSync(AMDSEV);
    const va = await verified(a, s, { firmware });
    const vb = await verified(b, s, { firmware });
    expect(va.verdict.match && vb.verdict.match).toBe(true);
    expect(va.verdict.mnonce.equals(vb.verdict.mnonce)).toBe(false);
    expect(va.m.launchMeasure).not.toBe(vb.m.launchMeasure);
    // QEMU measures once per launch and answers the same blob afterwards.
    expect((await a.qmpClient!.querySevLaunchMeasure()).data).toBe(va.m.launchMeasure);
    await Promise.all([a.stop(), b.stop()]);
  });

  it('a tampered secret packet is refused by the firmware MAC check; the VM keeps waiting', async () => {
    const sup = supervisor();
    const s = createSession(pdh, 0x1);
    const name = `mac-${run}`;
    const vm = await sup.launch(sevSpec(name, s, AMDSEV));
    const { m } = await verified(vm, s, { firmware: fs.readFileSync(AMDSEV) });
    const built = buildSecret({ tek: s.tek, tik: s.tik, measurement: Buffer.from(m.launchMeasure, 'base64'), plaintext: Buffer.from('secret-secret-secret') });
    const bad = Buffer.from(built.payload);
    bad[0] ^= 0x80;
    const err = await vm.injectSecret({ packetHeader: built.header.toString('base64'), secret: bad.toString('base64') }).catch((e) => e);
    expect(err).toBeInstanceOf(QmpCommandError);
    expect(err.desc).toBe("SEV: failed to inject secret ret=1 fw_error=11 'Bad measurement'");
    expect(vm.state).toBe('awaiting-secret');
    expect(fs.existsSync(secretFile(name))).toBe(false);
    // Too big for the 0xc00-byte area: refused before QEMU sees it.
    const big = await vm.injectSecret({ packetHeader: built.header.toString('base64'), secret: Buffer.alloc(0xc01).toString('base64') }).catch((e) => e);
    expect(big).toBeInstanceOf(VmSecretError);
    expect(big.code).toBe('ERR_VM_SECRET_SIZE');
    // The genuine packet still works.
    await vm.injectSecret({ packetHeader: built.header.toString('base64'), secret: built.payload.toString('base64') });
    expect(fs.readFileSync(secretFile(name)).toString()).toBe('secret-secret-secret');
    expect(await vm.injectSecret({ packetHeader: built.header.toString('base64'), secret: built.payload.toString('base64') }).catch((e) => e)).toBeInstanceOf(
      VmStateError,
    );
    await vm.stop();
  });

  it('Debian OVMF has no secret area: refused without a GPA, accepted with one', async () => {
    const sup = supervisor();
    const s = createSession(pdh, 0x1);
    const name = `gpa-${run}`;
    const vm = await sup.launch(sevSpec(name, s, DEBIAN_OVMF));
    const { m, verdict } = await verified(vm, s, { firmware: fs.readFileSync(DEBIAN_OVMF) });
    expect(verdict.match).toBe(true);
    const built = buildSecret({ tek: s.tek, tik: s.tik, measurement: Buffer.from(m.launchMeasure, 'base64'), plaintext: Buffer.from('gpa-secret') });
    const args = { packetHeader: built.header.toString('base64'), secret: built.payload.toString('base64') };
    const err = await vm.injectSecret(args).catch((e) => e);
    expect(err.code).toBe('ERR_VM_NO_SECRET_AREA');
    // Straight to the wrapper without a GPA: like QEMU it takes the secret GUID's base even though it is 0.
    await vm.qmpClient!.sevInjectLaunchSecret({ 'packet-header': args.packetHeader, secret: args.secret });
    expect(JSON.parse(fs.readFileSync(path.join(sim.stateDir, 'guests', name, 'launch-secret.json'), 'utf8')).gpa).toBe(0);
    await vm.injectSecret({ ...args, gpa: 0x800000 });
    expect(JSON.parse(fs.readFileSync(path.join(sim.stateDir, 'guests', name, 'launch-secret.json'), 'utf8')).gpa).toBe(0x800000);
    await vm.stop();
  });

  it('bad sessions make QEMU fail to start, as LAUNCH_START would', async () => {
    const sup = supervisor();
    // Session MACed for policy 0x1, launched with policy 0x3.
    const s = createSession(pdh, 0x1);
    const e1 = await sup.launch({ ...sevSpec(`pol-${run}`, s, AMDSEV), sev: { policy: 0x3, godh: s.godhB64, session: s.sessionB64 } }).catch((e) => e);
    expect(e1).toBeInstanceOf(VmExitedError);
    expect(e1.exitCode).toBe(1);
    expect(e1.message).toContain("sev_launch_start: LAUNCH_START ret=1 fw_error=7 'Policy is not allowed'");
    // A session blob with a flipped byte: the wrap MAC fails.
    const blob = Buffer.from(s.session);
    blob[40] ^= 1;
    const e2 = await sup.launch({ ...sevSpec(`mac2-${run}`, s, AMDSEV), sev: { policy: 1, godh: s.godhB64, session: blob } }).catch((e) => e);
    expect(e2).toBeInstanceOf(VmExitedError);
    expect(e2.message).toMatch(/sev_launch_start: LAUNCH_START ret=1 fw_error=\d+ '/);
    // A GODH that is not a certificate at all.
    const e3 = await sup.launch({ ...sevSpec(`cert-${run}`, s, AMDSEV), sev: { policy: 1, godh: Buffer.alloc(16), session: s.sessionB64 } }).catch((e) => e);
    expect(e3.message).toContain("fw_error=6 'Certificate is invalid'");
    expect(sup.list()).toEqual([]);
  });

  it("a cbitpos that is not the simulated host's is refused like QEMU does", async () => {
    const sup = supervisor({ hostAddressBits: { cbitpos: 47, reducedPhysBits: 1 } });
    const s = createSession(pdh, 0x1);
    const err = await sup.launch(sevSpec(`cbit-${run}`, s, AMDSEV)).catch((e) => e);
    expect(err).toBeInstanceOf(VmExitedError);
    expect(err.message).toContain("sev_kvm_init: cbitpos check failed, host '51' requested '47'");
  });

  it('reads cbitpos / reduced-phys-bits of the simulated host from its CPUID (51 / 1)', async () => {
    const { hostAddressBits } = await import('../../lib/vm/index.js');
    expect(await hostAddressBits({ cpuidFile: sim.env.SEVKIT_CPUID })).toEqual({ cbitpos: 51, reducedPhysBits: 1 });
  });

  it('QEMU killed at each step: starting, awaiting-secret, running', async () => {
    const sup = supervisor();
    const s = createSession(pdh, 0x1);
    // starting: kill as soon as the process exists.
    const p = sup.launch(sevSpec(`k1-${run}`, s, AMDSEV));
    await new Promise<void>((resolve) => {
      const t = setInterval(() => {
        const pid = sup.get(`k1-${run}`)?.pid;
        if (pid) {
          clearInterval(t);
          process.kill(pid, 'SIGKILL');
          resolve();
        }
      }, 1);
    });
    const e1 = await p.catch((e) => e);
    expect(e1).toBeInstanceOf(VmExitedError);
    expect(e1.message).toContain('was killed by SIGKILL while starting');

    const vm2 = await sup.launch(sevSpec(`k2-${run}`, s, AMDSEV));
    process.kill(vm2.pid!, 'SIGKILL');
    expect(await vm2.waitEnded()).toBe('failed');
    expect(vm2.exitReason!.message).toContain('while awaiting-secret');

    const vm3 = await sup.launch(sevSpec(`k3-${run}`, s, AMDSEV));
    await vm3.resume();
    process.kill(vm3.pid!, 'SIGKILL');
    expect(await vm3.waitEnded()).toBe('failed');
    expect(vm3.exitReason!.signal).toBe('SIGKILL');
  });

  it('the firmware secret area follows the file: rewritten in place, the next launch reads the new image', async () => {
    const sup = supervisor();
    const fw = path.join(root, `fw-${run}.bin`);
    const amd = fs.readFileSync(AMDSEV);
    fs.writeFileSync(fw, amd);
    const s = createSession(pdh, 0x1);
    const vm1 = await sup.launch(sevSpec(`fw1-${run}`, s, fw));
    expect(vm1.firmwareSecretArea).toEqual({ base: 0x810000, size: 0xc00 });
    await vm1.stop({ timeoutMs: 20_000 });
    // Same path, same size, no OVMF footer table any more.
    fs.writeFileSync(fw, Buffer.alloc(amd.length, 0xa5));
    const vm2 = await sup.launch(sevSpec(`fw2-${run}`, createSession(pdh, 0x1), fw));
    expect(vm2.firmwareSecretArea).toBeUndefined();
    await vm2.stop({ timeoutMs: 20_000 });
    fs.rmSync(fw);
    const gone = await sup.launch(sevSpec(`fw3-${run}`, createSession(pdh, 0x1), fw)).catch((e) => e);
    expect(gone.message).toBe(`firmware ${fw}: no such file`);
  });

  it('powerdown of a running VM-less guest ends QEMU cleanly', async () => {
    const sup = supervisor();
    const s = createSession(pdh, 0x1);
    const vm = await sup.launch(sevSpec(`pd-${run}`, s, AMDSEV));
    await vm.resume();
    await vm.stop({ timeoutMs: 20_000 });
    expect(vm.state).toBe('stopped');
    // Exited by itself after the ACPI powerdown: no quit, no kill.
    expect(vm.exitReason?.exitCode).toBe(0);
    expect(vm.exitReason?.signal).toBeNull();
  });
});

describe.skipIf(!fs.existsSync(REAL_QEMU))('SEV-ES launch through the simulator with the real QEMU 7.2 (TCG)', () => {
  it('real QEMU runs the VM; the wrapper answers SEV and forwards the rest', async () => {
    const env = { ...sim.env, SEVKIT_REAL_QEMU: REAL_QEMU };
    const sup = supervisor({}, env);
    const s = createSession(pdh, 0x5);
    const name = `real-${run}`;
    const vm = await sup.launch(sevSpec(name, s, DEBIAN_OVMF, { vcpus: 2, cpu: 'EPYC-Milan', accel: 'kvm' }));
    const firmware = fs.readFileSync(DEBIAN_OVMF);
    const { m, verdict } = await verified(vm, s, { firmware, es: { numCpus: 2, vcpuType: 'EPYC-Milan', vmType: 'legacy' } });
    expect(verdict.match).toBe(true);
    // The real QEMU answers what the wrapper does not.
    expect(vm.qmpClient!.greeting.QMP.version.package).toMatch(/^Debian .* \+ sevkit-sim SEV wrapper \(SIMULATED SEV\)$/);
    expect(vm.qmpClient!.greeting.QMP.version.qemu).toMatchObject({ major: 7, minor: 2 });
    expect(await vm.qmpClient!.execute('qom-get', { path: '/machine', property: 'type' })).toBe('pc-q35-7.2-machine');
    const built = buildSecret({ tek: s.tek, tik: s.tik, measurement: Buffer.from(m.launchMeasure, 'base64'), plaintext: Buffer.from('real-qemu-secret') });
    await vm.injectSecret({ packetHeader: built.header.toString('base64'), secret: built.payload.toString('base64'), gpa: 0x800000 });
    expect(await vm.qmpClient!.queryStatus()).toMatchObject({ status: 'running', running: true });
    expect(fs.readFileSync(secretFile(name)).toString()).toBe('real-qemu-secret');
    await vm.stop({ timeoutMs: 2000 });
    expect(vm.state).toBe('stopped');
  });

  it('a crashed wrapper takes its real QEMU with it', async () => {
    const env = { ...sim.env, SEVKIT_REAL_QEMU: REAL_QEMU };
    const sup = supervisor({}, env);
    const s = createSession(pdh, 0x1);
    const vm = await sup.launch(sevSpec(`crash-${run}`, s, DEBIAN_OVMF, { cpu: 'EPYC-Milan', accel: 'kvm' }));
    const dir = vm.runDir!;
    expect(processesMentioning(dir).length).toBeGreaterThanOrEqual(2); // wrapper + real QEMU
    process.kill(vm.pid!, 'SIGKILL'); // the wrapper only, not its group
    expect(await vm.waitEnded()).toBe('failed');
    for (let i = 0; i < 200 && processesMentioning(dir).length > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(processesMentioning(dir)).toEqual([]);
  });
});

describe.skipIf(!process.env.SEVKIT_SIM_SOCKET)('the wrapper drives the simulator daemon (SimClient)', () => {
  it('guests live in the daemon: distinct handles, platform WORKING while one waits', async () => {
    expect(sim.daemon).toBe(true);
    const { SimClient } = await import('../../lib/sim/client.js');
    const client = await SimClient.connect(process.env.SEVKIT_SIM_SOCKET);
    try {
      const sup = supervisor();
      const s = createSession(pdh, 0x1);
      const a = await sup.launch(sevSpec(`d1-${run}`, s, AMDSEV));
      const b = await sup.launch(sevSpec(`d2-${run}`, createSession(pdh, 0x1), AMDSEV));
      const ha = (await a.measurement()).sevInfo.handle;
      const hb = (await b.measurement()).sevInfo.handle;
      expect(ha).not.toBe(hb);
      const st = await client.status();
      expect(st.state).toBe('WORKING');
      expect(st.guestCount).toBeGreaterThanOrEqual(2);
      expect((await a.measurement()).sevInfo['build-id']).toBe(st.api.build);
      await Promise.all([a.stop(), b.stop()]);
    } finally {
      client.close();
    }
  });
});
