/**
 * Supervisor lifecycle against Debian's QEMU 7.2 under TCG (no SEV here, so a
 * plain guest), and fault injection with a misbehaving stand-in QEMU.
 */
import { describe, it, expect, afterAll, beforeAll } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Supervisor, VmExitedError, VmLaunchError, VmSecretError, VmStateError, type ConfidentialVm } from '../../lib/vm/index.js';
import { QmpCommandError, QmpDisconnectedError, QmpProtocolError } from '../../lib/qmp/index.js';
import { filesUnder, processesMentioning, tmpRunRoot } from './helpers.js';

const QEMU = '/usr/bin/qemu-system-x86_64';
const OVMF = '/usr/share/OVMF/OVMF_CODE.fd';
const FAKE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures/fake-qemu.mjs');
const haveQemu = fs.existsSync(QEMU) && fs.existsSync(OVMF);
const HOST = { cbitpos: 51, reducedPhysBits: 1 };

let root: string;
beforeAll(() => {
  root = tmpRunRoot('vmlife');
});
afterAll(() => {
  // Nothing left running, nothing left on disk.
  expect(processesMentioning(root)).toEqual([]);
  expect(filesUnder(root)).toEqual([]);
  fs.rmSync(root, { recursive: true, force: true });
});

function plainSpec(name: string) {
  return { name, firmware: OVMF, memMb: 64, vcpus: 1, accel: 'tcg' as const, cpu: 'qemu64' };
}

describe.skipIf(!haveQemu)('Supervisor with real QEMU 7.2 (plain guest, TCG)', () => {
  it('starting → awaiting-secret → running → stopped, rejecting illegal steps', async () => {
    const sup = new Supervisor({ qemu: QEMU, runRoot: root, hostAddressBits: HOST });
    const states: string[] = [];
    const vm = await sup.launch(plainSpec('life1'));
    vm.on('state', (s) => states.push(s));
    expect(vm.state).toBe('awaiting-secret');
    const dir = vm.runDir!;
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(vm.qmpSocketPath!).isSocket()).toBe(true);
    expect(sup.get('life1')).toBe(vm);
    expect(await vm.qmpClient!.queryStatus()).toMatchObject({ status: 'prelaunch' });

    // A non-SEV guest: QEMU's own error class comes through.
    const m = await vm.measurement().catch((e) => e);
    expect(m).toBeInstanceOf(QmpCommandError);
    expect(m.desc).toBe('SEV launch measurement is not available');

    // Debian's OVMF declares no launch-secret area: refuse without a GPA, before talking to QEMU.
    expect(vm.firmwareSecretArea).toBeUndefined();
    const header = Buffer.alloc(52).toString('base64');
    const noArea = await vm.injectSecret({ packetHeader: header, secret: Buffer.alloc(32).toString('base64') }).catch((e) => e);
    expect(noArea).toBeInstanceOf(VmSecretError);
    expect(noArea.code).toBe('ERR_VM_NO_SECRET_AREA');
    expect(noArea.message).toContain(OVMF);
    const badB64 = await vm.injectSecret({ packetHeader: 'not base64!', secret: 'AAAA', gpa: 0x1000 }).catch((e) => e);
    expect(badB64.code).toBe('ERR_VM_BASE64');
    const shortHdr = await vm.injectSecret({ packetHeader: 'AAAA', secret: 'AAAA', gpa: 0x1000 }).catch((e) => e);
    expect(shortHdr.code).toBe('ERR_VM_SECRET_HEADER');
    // With a GPA, QEMU itself refuses (no SEV) and the VM keeps waiting.
    const refused = await vm.injectSecret({ packetHeader: header, secret: Buffer.alloc(32).toString('base64'), gpa: 0x1000 }).catch((e) => e);
    expect(refused).toBeInstanceOf(QmpCommandError);
    expect(refused.desc).toBe('SEV not enabled for guest');
    expect(vm.state).toBe('awaiting-secret');

    await vm.resume();
    expect(vm.state).toBe('running');
    expect(await vm.qmpClient!.queryStatus()).toMatchObject({ status: 'running', running: true });
    expect(await vm.resume().catch((e) => e)).toBeInstanceOf(VmStateError);
    expect(await vm.injectSecret({ packetHeader: header, secret: 'AAAA', gpa: 0 }).catch((e) => e)).toBeInstanceOf(VmStateError);

    const pid = vm.pid!;
    await vm.stop({ timeoutMs: 3000 });
    expect(vm.state).toBe('stopped');
    expect(states).toEqual(['running', 'stopped']);
    expect(() => process.kill(pid, 0)).toThrow();
    expect(fs.existsSync(dir)).toBe(false);
    expect(sup.get('life1')).toBeUndefined();
    expect(await vm.measurement().catch((e) => e)).toBeInstanceOf(VmStateError);
    await vm.stop(); // idempotent
  });

  it('stop() of a guest that cannot hear the ACPI button (firmware only, or paused) quits QEMU without a power-down', async () => {
    const sup = new Supervisor({ qemu: QEMU, runRoot: root, hostAddressBits: HOST });
    for (const paused of [false, true]) {
      const vm = await sup.launch(plainSpec(`noacpi${paused ? 'p' : 'r'}`));
      await vm.resume();
      if (paused) await vm.qmpClient!.stop();
      const events: string[] = [];
      vm.qmpClient!.onEvent((e) => events.push(e.event));
      // A long deadline: a power-down would have had up to half of it.
      await vm.stop({ timeoutMs: 120_000 });
      expect(vm.state).toBe('stopped');
      expect(events).not.toContain('POWERDOWN');
      expect(events).toContain('SHUTDOWN');
      expect(vm.exitReason?.exitCode).toBe(0);
      expect(vm.exitReason?.signal).toBeNull();
    }
  });

  it('an SEV guest on TCG: QEMU 7.2 aborts mid-launch; reported with its stderr, files removed', async () => {
    const sup = new Supervisor({ qemu: QEMU, runRoot: root, hostAddressBits: HOST });
    const err = await sup.launch({ ...plainSpec('tcgsev'), sev: { policy: 1, godh: Buffer.from('godh'), session: Buffer.from('session') } }).catch((e) => e);
    expect(err).toBeInstanceOf(VmExitedError);
    expect(err.signal ?? err.exitCode).toBeTruthy();
    expect(err.message).toMatch(/QEMU for VM tcgsev (was killed by SIGABRT|exited with code \d+) while starting: .*qemu-system-x86_64/);
    expect(err.message).not.toContain('\n');
    expect(sup.list()).toEqual([]);
  });

  it("a bad QEMU option fails the launch with QEMU's own message", async () => {
    const sup = new Supervisor({ qemu: QEMU, runRoot: root, hostAddressBits: HOST });
    const err = await sup.launch({ ...plainSpec('badopt'), extraArgs: ['-no-such-option'] }).catch((e) => e);
    expect(err).toBeInstanceOf(VmExitedError);
    expect(err.exitCode).toBe(1);
    expect(err.message).toContain('-no-such-option: invalid option');
  });

  it('QEMU killed while awaiting the secret, and while running → failed with the signal', async () => {
    const sup = new Supervisor({ qemu: QEMU, runRoot: root, hostAddressBits: HOST });
    const a = await sup.launch(plainSpec('killa'));
    const dirA = a.runDir!;
    const failedA = new Promise<Error>((r) => a.once('failed', r));
    process.kill(a.pid!, 'SIGKILL');
    const errA = await failedA;
    expect(errA).toBeInstanceOf(VmExitedError);
    expect(errA.message).toContain('was killed by SIGKILL while awaiting-secret');
    expect(await a.waitEnded()).toBe('failed');
    expect(fs.existsSync(dirA)).toBe(false);
    expect(await a.resume().catch((e) => e)).toBeInstanceOf(VmStateError);

    const b = await sup.launch(plainSpec('killb'));
    await b.resume();
    process.kill(b.pid!, 'SIGKILL');
    expect(await b.waitEnded()).toBe('failed');
    expect(b.exitReason?.signal).toBe('SIGKILL');
  });

  it('limits concurrent launches', async () => {
    const sup = new Supervisor({ qemu: QEMU, runRoot: root, hostAddressBits: HOST, maxConcurrentLaunches: 2 });
    let starting = 0;
    let peak = 0;
    const vms: ConfidentialVm[] = [];
    const launches = ['c1', 'c2', 'c3', 'c4', 'c5'].map(async (n) => {
      const p = sup.launch(plainSpec(n));
      return p;
    });
    // Count spawned-but-not-ready QEMUs by watching pids appear.
    const timer = setInterval(() => {
      starting = sup.list().filter((v) => v.state === 'starting' && v.pid !== undefined).length;
      peak = Math.max(peak, starting);
    }, 2);
    for (const l of launches) vms.push(await l);
    clearInterval(timer);
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(2);
    expect(vms.every((v) => v.state === 'awaiting-secret')).toBe(true);
    await sup.stopAll();
    expect(vms.every((v) => v.state === 'stopped')).toBe(true);
  });

  it('refuses a duplicate name, a bad name, a missing firmware and a missing binary', async () => {
    const sup = new Supervisor({ qemu: QEMU, runRoot: root, hostAddressBits: HOST });
    expect(await sup.launch({ ...plainSpec('../x') }).catch((e) => e)).toBeInstanceOf(VmLaunchError);
    const nf = await sup.launch({ ...plainSpec('nofw'), firmware: '/nonexistent/OVMF.fd' }).catch((e) => e);
    expect(nf.message).toBe('firmware /nonexistent/OVMF.fd: no such file');
    const dirFw = await sup.launch({ ...plainSpec('dirfw'), firmware: root }).catch((e) => e);
    expect(dirFw).toBeInstanceOf(VmLaunchError);
    expect(dirFw.message).toBe(`firmware ${root}: cannot read (EISDIR)`);
    const daemon = await sup.launch({ ...plainSpec('daemon'), extraArgs: ['-daemonize'] }).catch((e) => e);
    expect(daemon.code).toBe('ERR_VM_SPEC');
    expect(daemon.message).toBe("VM daemon: -daemonize in extraArgs would take QEMU out of the supervisor's reach");
    const sup2 = new Supervisor({ qemu: '/nonexistent/qemu', runRoot: root, hostAddressBits: HOST });
    const nb = await sup2.launch(plainSpec('nobin')).catch((e) => e);
    expect(nb.code).toBe('ERR_VM_SPAWN');
    expect(nb.message).toContain('ENOENT');
    const vm = await sup.launch(plainSpec('dup'));
    expect((await sup.launch(plainSpec('dup')).catch((e) => e)).message).toContain('already managed');
    await vm.stop();
  });
});

describe('fault injection with a stand-in QEMU', () => {
  const sevSpec = (name: string) => ({
    name,
    firmware: OVMF,
    sev: { policy: 1, godh: 'Z29kaA==', session: 'c2Vzc2lvbg==' },
  });
  const sup = (mode: string, extra = {}) =>
    new Supervisor({ qemu: FAKE, runRoot: root, hostAddressBits: HOST, env: { ...process.env, FAKE_QEMU_MODE: mode }, ...extra });

  it.skipIf(!fs.existsSync(OVMF))('writes the owner blobs 0600 in the private dir and reads the measurement', async () => {
    const s = sup('ok');
    const vm = await s.launch(sevSpec('okfake'));
    expect(fs.readFileSync(path.join(vm.runDir!, 'godh.b64'), 'utf8')).toBe('Z29kaA==');
    expect(fs.statSync(path.join(vm.runDir!, 'session.b64')).mode & 0o777).toBe(0o600);
    const m = await vm.measurement();
    expect(Buffer.from(m.launchMeasure, 'base64')).toEqual(Buffer.alloc(48, 7));
    expect(m.sevInfo).toMatchObject({ enabled: true, state: 'launch-secret', 'build-id': 21 });
    await vm.stop();
    expect(vm.state).toBe('stopped');
  });

  it.skipIf(!fs.existsSync(OVMF))('QEMU exiting before QMP → VmExitedError with stderr tail', async () => {
    const err = await sup('exit-early')
      .launch(sevSpec('early'))
      .catch((e) => e);
    expect(err).toBeInstanceOf(VmExitedError);
    expect(err.message).toMatch(/^QEMU for VM early exited with code 1 while starting: .*qemu-system-x86_64: -object sev-guest: fake failure for tests$/);
  });

  it.skipIf(!fs.existsSync(OVMF))('QEMU exiting while its group still holds the stdio pipes → VmExitedError at once, group killed', async () => {
    const err = await sup('orphan-exit')
      .launch(sevSpec('orphan'))
      .catch((e) => e);
    expect(err).toBeInstanceOf(VmExitedError);
    expect(err.exitCode).toBe(3);
    expect(err.message).toContain('fake: left a straggler');
    expect(processesMentioning(root)).toEqual([]);
  });

  it.skipIf(!fs.existsSync(OVMF))('QMP socket closed mid-command (QEMU alive) → QmpDisconnectedError, QEMU killed', async () => {
    const err = await sup('close-on-measure')
      .launch(sevSpec('midclose'))
      .catch((e) => e);
    expect(err).toBeInstanceOf(QmpDisconnectedError);
  });

  it.skipIf(!fs.existsSync(OVMF))('QEMU dying mid-command → VmExitedError naming the stderr', async () => {
    const err = await sup('die-on-measure')
      .launch(sevSpec('middie'))
      .catch((e) => e);
    expect(err).toBeInstanceOf(VmExitedError);
    expect(err.exitCode).toBe(3);
    expect(err.message).toContain('fake: LAUNCH_MEASURE exploded');
  });

  it.skipIf(!fs.existsSync(OVMF))('malformed QMP line → QmpProtocolError, QEMU killed', async () => {
    const err = await sup('garbage')
      .launch(sevSpec('garbage'))
      .catch((e) => e);
    expect(err).toBeInstanceOf(QmpProtocolError);
    expect(err.message).toContain('not JSON');
  });

  it.skipIf(!fs.existsSync(OVMF))('a queued launch stopped before it starts never spawns, and frees its name', async () => {
    const s = sup('ok', { maxConcurrentLaunches: 1 });
    const a = s.launch(sevSpec('qa'));
    const b = s.launch(sevSpec('qb'));
    const vb = s.get('qb')!;
    expect(vb.state).toBe('starting');
    await vb.stop();
    expect(vb.state).toBe('stopped');
    expect(vb.pid).toBeUndefined();
    const errB = await b.catch((e) => e);
    expect(errB).toBeInstanceOf(VmStateError);
    expect(s.get('qb')).toBeUndefined();
    const va = await a;
    const again = await s.launch(sevSpec('qb'));
    expect(again.state).toBe('awaiting-secret');
    await Promise.all([va.stop(), again.stop()]);
  });

  it.skipIf(!fs.existsSync(OVMF))('stop() while QEMU is launching: the launch rejects with VmStateError, nothing left', async () => {
    const s = sup('ok');
    const p = s.launch(sevSpec('stopmid'));
    const vm = s.get('stopmid')!;
    // As soon as the process exists (polled, not slept): QEMU is up, QMP not yet answered.
    while (vm.pid === undefined) await new Promise((r) => setImmediate(r));
    const dir = vm.runDir!;
    const stopped = vm.stop();
    const err = await p.catch((e) => e);
    await stopped;
    expect(err).toBeInstanceOf(VmStateError);
    expect(err.message).toBe('VM stopmid was stopped during its launch');
    expect(vm.state).toBe('stopped');
    expect(fs.existsSync(dir)).toBe(false);
    expect(processesMentioning(dir)).toEqual([]);
    expect(s.get('stopmid')).toBeUndefined();
  });

  it.skipIf(!fs.existsSync(OVMF))(
    'concurrent calls: two injectSecret → one runs, one is refused; a measurement read alongside; stop twice at once',
    async () => {
      const vm = await sup('ok').launch(sevSpec('twice'));
      const packet = { packetHeader: Buffer.alloc(52, 1).toString('base64'), secret: Buffer.alloc(32, 2).toString('base64'), gpa: 0x1000 };
      const [a, b, m] = await Promise.allSettled([vm.injectSecret(packet), vm.injectSecret(packet), vm.measurement()]);
      expect(a.status).toBe('fulfilled');
      expect(b.status === 'rejected' && b.reason).toBeInstanceOf(VmStateError);
      expect((b as PromiseRejectedResult).reason.message).toBe('VM twice: cannot inject a secret in state running (needs awaiting-secret)');
      expect(m.status).toBe('fulfilled');
      expect(vm.state).toBe('running');
      expect(await vm.resume().catch((e) => e)).toBeInstanceOf(VmStateError);
      const dir = vm.runDir!;
      await Promise.all([vm.stop({ timeoutMs: 2000 }), vm.stop({ timeoutMs: 2000 })]);
      expect(vm.state).toBe('stopped');
      expect(fs.existsSync(dir)).toBe(false);
    },
  );

  it.skipIf(!fs.existsSync(OVMF))('a QEMU ignoring quit and SIGTERM is killed at the stop deadline', async () => {
    const vm = await sup('stubborn').launch(sevSpec('stubborn'));
    const pid = vm.pid!;
    await vm.stop({ timeoutMs: 300 });
    expect(vm.state).toBe('stopped');
    expect(vm.exitReason?.signal).toBe('SIGKILL'); // the deadline ran out and the kill came
    expect(() => process.kill(pid, 0)).toThrow();
  });
});
