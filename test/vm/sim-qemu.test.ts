/** The simulator's QEMU wrapper in detail: argv handling, QEMU-like refusals, its QMP server. */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { VECTORS, runCli } from '../helpers/cli.js';
import { parseQemuArgs, rewriteForRealQemu, splitProps, joinProps } from '../../lib/sim/qemu/argv.js';
import { findRealQemu } from '../../lib/sim/qemu/main.js';
import { Supervisor, VmExitedError } from '../../lib/vm/index.js';
import { computeLaunchDigest, createSession, verifyMeasurement } from '../../lib/launch/index.js';
import { filesUnder, processesMentioning, tmpRunRoot } from './helpers.js';
import { makeSimEnv, type SimEnv } from './simenv.js';

const FIXTURE = path.join(VECTORS, 'aleph/aleph-vm/rust/crates/supervisor-controller/tests/conformance/controller_argv_confidential/with_nic.json');
const AMDSEV = path.join(VECTORS, 'sev-snp-measure/ovmf_AmdSev_suffix.bin');

describe('QEMU argv as the wrapper reads it', () => {
  const argv: string[] = JSON.parse(fs.readFileSync(FIXTURE, 'utf8')).expected_argv;

  it("finds the SEV pieces of aleph's command line", () => {
    const p = parseQemuArgs(argv.slice(1));
    expect(p.sev).toEqual({
      id: 'sev0',
      policy: 1,
      cbitpos: 51,
      reducedPhysBits: 1,
      dhCertFile: '/var/lib/aleph/vm/testhash/vm_godh.b64',
      sessionFile: '/var/lib/aleph/vm/testhash/vm_session.b64',
      kernelHashes: false,
      handle: 0,
      sevDevice: '/dev/sev',
    });
    expect(p.firmware).toBe('/opt/aleph-vm/OVMF_CODE.fd');
    expect(p.vcpus).toBe(2);
    expect(p.cpuModel).toBe('host');
    expect(p.startPaused).toBe(true);
    expect(p.accel).toBe('kvm');
    expect(p.qmpSockets).toEqual(['/var/lib/aleph/vm/testhash-qmp.socket']);
  });

  it('rewrites it for a real QEMU on TCG: only the SEV, KVM, host-CPU and QMP bits change', () => {
    const p = parseQemuArgs(argv.slice(1));
    const out = rewriteForRealQemu(p, '/run/x/.real.sock', 'tcg');
    const expected = argv.slice(1).filter((a) => !a.startsWith('sev-guest,') && a !== '-object');
    const fix = (a: string) =>
      a === '-enable-kvm'
        ? ['-accel', 'tcg']
        : a === 'q35,confidential-guest-support=sev0'
          ? ['q35']
          : a === 'host,host-phys-bits-limit=0x28'
            ? ['max,host-phys-bits-limit=0x28']
            : a === 'unix:/var/lib/aleph/vm/testhash-qmp.socket,server,nowait'
              ? ['unix:/run/x/.real.sock,server=on,wait=off']
              : a === '--no-reboot'
                ? ['-no-reboot']
                : [a];
    expect(out).toEqual(expected.flatMap(fix));
    // KVM kept when asked.
    expect(rewriteForRealQemu(p, '/r.sock', 'kvm')).toContain('-enable-kvm');
  });

  it('handles QemuOpts escaping and refuses what QEMU refuses', () => {
    expect(splitProps('file=/a,,b/c.fd,if=pflash')).toEqual([
      ['file', '/a,b/c.fd'],
      ['if', 'pflash'],
    ]);
    expect(
      joinProps([
        ['', 'q35'],
        ['x', 'a,b'],
      ]),
    ).toBe('q35,x=a,,b');
    expect(() => parseQemuArgs(['-object', 'sev-guest,id=s,cbitpos=51', '-machine', 'q35,confidential-guest-support=s'])).toThrow(
      "Parameter 'reduced-phys-bits' is missing",
    );
    expect(() => parseQemuArgs(['-machine', 'q35,memory-encryption=nope'])).toThrow("object 'nope' not found");
    expect(() => parseQemuArgs(['-object', 'sev-guest,id=s,reduced-phys-bits=1,policy=banana', '-machine', 'q35,confidential-guest-support=s'])).toThrow(
      'policy',
    );
    expect(() => parseQemuArgs(['-m'])).toThrow('requires an argument');
    const p = parseQemuArgs([
      '-smp',
      'cpus=4,sockets=1',
      '-name',
      'guest=vm7,debug-threads=on',
      '-bios',
      '/fw.bin',
      '-object',
      'sev-guest,id=s,reduced-phys-bits=1,policy=0x7,kernel-hashes=on',
      '-M',
      'q35,memory-encryption=s',
    ]);
    expect([p.vcpus, p.name, p.firmware, p.sev?.policy, p.sev?.kernelHashes]).toEqual([4, 'vm7', '/fw.bin', 7, true]);
  });
});

describe('never recurses into itself', () => {
  it('skips a "real" QEMU that is the wrapper (by path or by its launcher script)', () => {
    const dir = tmpRunRoot('rec');
    const launcher = path.join(dir, 'qemu-system-x86_64');
    fs.writeFileSync(launcher, '#!/bin/sh\nexec node /x/lib/sim/qemu/main.ts "$@"\n', { mode: 0o755 });
    expect(findRealQemu({ SEVKIT_REAL_QEMU: launcher })).toBeUndefined();
    expect(findRealQemu({ SEVKIT_REAL_QEMU: '/bin/true', SEVKIT_QEMU: '/bin/true' })).toBeUndefined();
    expect(findRealQemu({ SEVKIT_REAL_QEMU: 'none' })).toBeUndefined();
    expect(findRealQemu({ SEVKIT_REAL_QEMU: '/bin/true' })).toBe(fs.realpathSync('/bin/true'));
    fs.rmSync(dir, { recursive: true });
  });
});

describe('the wrapper as a process', () => {
  let sim: SimEnv;
  let root: string;
  const run = crypto.randomBytes(3).toString('hex');
  beforeAll(async () => {
    sim = await makeSimEnv({ realQemu: 'none' });
    root = tmpRunRoot('simqemu');
  });
  afterAll(() => {
    expect(processesMentioning(root)).toEqual([]);
    expect(filesUnder(root)).toEqual([]);
    fs.rmSync(root, { recursive: true, force: true });
    sim?.cleanup();
  });

  function runWrapper(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string }> {
    return new Promise((resolve) => {
      const c = spawn(sim.qemu, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      c.stderr.on('data', (d) => (stderr += d));
      c.on('close', (code) => resolve({ code, stderr }));
    });
  }

  it('outside the simulator it refuses SEV guests with a clear line', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, SEVKIT_REAL_QEMU: 'none' };
    delete env.SEVKIT_SIM_SOCKET;
    delete env.SEVKIT_SIM_STATE;
    const r = await runWrapper(
      [
        '-object',
        'sev-guest,id=s,cbitpos=51,reduced-phys-bits=1',
        '-machine',
        'q35,confidential-guest-support=s',
        '-bios',
        AMDSEV,
        '-qmp',
        `unix:${root}/x.sock,server,nowait`,
      ],
      env,
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^qemu-system-x86_64: sev_kvm_init: .*run it inside `sevkit sim`/m);
  });

  it('a missing session file fails like QEMU, naming the file', async () => {
    const r = await runWrapper(
      [
        '-S',
        '-object',
        `sev-guest,id=s,cbitpos=51,reduced-phys-bits=1,dh-cert-file=${root}/nope-godh.b64,session-file=${root}/nope-session.b64`,
        '-machine',
        'q35,confidential-guest-support=s',
        '-bios',
        AMDSEV,
        '-qmp',
        `unix:${root}/y.sock,server,nowait`,
      ],
      sim.env,
    );
    expect(r.code).toBe(1);
    // (only the wrapper's lines: the environment may add loader noise of its own)
    // QEMU 7.2 sev_read_file_base64(): g_file_get_contents()'s GError text.
    expect(r.stderr.split('\n').filter((l) => l.startsWith('qemu-system-x86_64:'))).toEqual([
      `qemu-system-x86_64: SEV: Failed to read '${root}/nope-godh.b64' (Failed to open file \u201c${root}/nope-godh.b64\u201d: No such file or directory)`,
      'qemu-system-x86_64: sev_kvm_init: failed to create encryption context',
      'qemu-system-x86_64: failed to initialize kvm: Operation not permitted',
    ]);
  });

  it("an SEV-ES guest needs the firmware's reset block; -cpu host takes the simulated host's signature", async () => {
    const noTable = path.join(root, 'plain.fd');
    fs.writeFileSync(noTable, Buffer.alloc(4096));
    const sup = new Supervisor({ qemu: sim.qemu, env: sim.env, runRoot: root });
    const pdh = fs.readFileSync(path.join(sim.stateDir, 'pdh.cert'));
    const s = createSession(pdh, 0x5);
    const err = await sup.launch({ name: `esnoreset-${run}`, firmware: noTable, sev: { policy: 5, godh: s.godhB64, session: s.sessionB64 } }).catch((e) => e);
    expect(err).toBeInstanceOf(VmExitedError);
    expect(err.message).toContain('SEV: SEV information block/Firmware GUID Table block not found in pflash rom');
    fs.rmSync(noTable);
    // aleph's -cpu host: the VMSA carries the (simulated) Genoa's CPUID signature.
    const s2 = createSession(pdh, 0x5);
    const vm = await sup.launch({ name: `eshost-${run}`, firmware: AMDSEV, vcpus: 2, sev: { policy: 5, godh: s2.godhB64, session: s2.sessionB64 } });
    const m = await vm.measurement();
    const { openCpuid } = await import('../../lib/platform/cpuid.js');
    const r = await openCpuid({ file: sim.env.SEVKIT_CPUID });
    const sig = (r.get(1)[0] || r.get(0x80000001)[0]) >>> 0;
    expect(sig >>> 20).toBe(0xa); // family 0x19 (Zen 4)
    const verdict = verifyMeasurement({
      measurement: m.launchMeasure,
      sevInfo: { apiMajor: m.sevInfo['api-major'], apiMinor: m.sevInfo['api-minor'], buildId: m.sevInfo['build-id'], policy: 5 },
      expected: { policy: 5, tik: s2.tik, launch: { firmware: fs.readFileSync(AMDSEV), es: { numCpus: 2, vcpuSig: sig, vmType: 'legacy' } } },
    });
    expect(verdict.match).toBe(true);
    await vm.stop();
  });

  it('measured direct boot: kernel-hashes=on adds the hashes table to the digest', async () => {
    const kernel = path.join(root, 'bzImage');
    fs.writeFileSync(kernel, crypto.randomBytes(4096));
    const sup = new Supervisor({ qemu: sim.qemu, env: sim.env, runRoot: root });
    const s = createSession(fs.readFileSync(path.join(sim.stateDir, 'pdh.cert')), 0x1);
    const vm = await sup.launch({
      name: `kh-${run}`,
      firmware: AMDSEV,
      kernel,
      append: 'console=ttyS0',
      sev: { policy: 1, godh: s.godhB64, session: s.sessionB64, kernelHashes: true },
    });
    const m = await vm.measurement();
    const firmware = fs.readFileSync(AMDSEV);
    const sevInfo = { apiMajor: m.sevInfo['api-major'], apiMinor: m.sevInfo['api-minor'], buildId: m.sevInfo['build-id'], policy: 1 };
    const good = verifyMeasurement({
      measurement: m.launchMeasure,
      sevInfo,
      expected: { policy: 1, tik: s.tik, launch: { firmware, kernel: { kernel: fs.readFileSync(kernel), cmdline: 'console=ttyS0' } } },
    });
    expect(good.match).toBe(true);
    const wrongCmdline = verifyMeasurement({
      measurement: m.launchMeasure,
      sevInfo,
      expected: { policy: 1, tik: s.tik, launch: { firmware, kernel: { kernel: fs.readFileSync(kernel), cmdline: 'console=ttyS1' } } },
    });
    expect(wrongCmdline.match).toBe(false);
    expect(
      verifyMeasurement({ measurement: m.launchMeasure, sevInfo, expected: { policy: 1, tik: s.tik, digest: computeLaunchDigest({ firmware }) } }).match,
    ).toBe(false);
    await vm.stop();
    fs.rmSync(kernel);
  });

  it('firmware-chosen keys without GODH/session, RESUME event on cont, sevkit qmp alongside the supervisor, SIGTERM', async () => {
    const sup = new Supervisor({ qemu: sim.qemu, env: sim.env, runRoot: root });
    const vm = await sup.launch({ name: `nokeys-${run}`, firmware: AMDSEV, sev: { policy: 1 } });
    expect(fs.readdirSync(vm.runDir!).filter((f) => f.endsWith('.b64'))).toEqual([]);
    const m = await vm.measurement();
    expect(m.sevInfo.state).toBe('launch-secret');
    expect(Buffer.from(m.launchMeasure, 'base64').length).toBe(48);
    // The wrapper serves more than one QMP client: the CLI works next to the supervisor's connection.
    const cli = await runCli(['qmp', vm.qmpSocketPath!, 'query-sev'], { env: sim.env });
    expect(cli.code).toBe(0);
    expect(JSON.parse(cli.stdout)).toMatchObject({ enabled: true, state: 'launch-secret', handle: m.sevInfo.handle });
    const bad = await runCli(['qmp', vm.qmpSocketPath!, 'query-sev-attestation-report', '{"mnonce":"AAAA"}'], { env: sim.env });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe('sevkit: QMP query-sev-attestation-report failed: GenericError: SEV: mnonce must be 16 bytes (got 3)\n');
    const resumed = vm.qmpClient!.waitForEvent('RESUME', { timeoutMs: 10_000 });
    await vm.resume();
    await resumed;
    process.kill(vm.pid!, 'SIGTERM');
    expect(await vm.waitEnded()).toBe('stopped'); // exit 0 from running
    expect(vm.exitReason!.message).toContain('terminating on signal 15');
  });

  it('speaks QMP like QEMU: negotiation first, errors with classes, capabilities from the platform', async () => {
    const sup = new Supervisor({ qemu: sim.qemu, env: sim.env, runRoot: root });
    const s = createSession(fs.readFileSync(path.join(sim.stateDir, 'pdh.cert')), 0x1);
    const vm = await sup.launch({ name: `qmp-${run}`, firmware: AMDSEV, sev: { policy: 1, godh: s.godhB64, session: s.sessionB64 } });
    // A second, raw client.
    const sock = net.createConnection(vm.qmpSocketPath!);
    const lines: unknown[] = [];
    let buf = '';
    const waitLines = (n: number) =>
      new Promise<void>((resolve) => {
        const check = () => (lines.length >= n ? resolve() : setTimeout(check, 5));
        check();
      });
    sock.on('data', (d) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        lines.push(JSON.parse(buf.slice(0, i)));
        buf = buf.slice(i + 1);
      }
    });
    await waitLines(1);
    expect(lines[0]).toHaveProperty('QMP');
    sock.write('{"execute":"query-status","id":1}\n');
    await waitLines(2);
    expect(lines[1]).toEqual({ error: { class: 'CommandNotFound', desc: "Expecting capabilities negotiation with 'qmp_capabilities'" }, id: 1 });
    sock.write('{"execute":"qmp_capabilities"}\n{not json}\n{"execute":"no-such","id":"x"}\n');
    await waitLines(5);
    expect(lines[2]).toEqual({ return: {} });
    expect((lines[3] as { error: { class: string } }).error.class).toBe('GenericError');
    expect(lines[4]).toEqual({ error: { class: 'CommandNotFound', desc: 'The command no-such has not been found' }, id: 'x' });
    sock.destroy();

    const caps = await vm.qmpClient!.querySevCapabilities();
    expect(Buffer.from(caps.pdh, 'base64')).toEqual(fs.readFileSync(path.join(sim.stateDir, 'pdh.cert')));
    expect(Buffer.from(caps['cert-chain'], 'base64').length).toBe(3 * 2084);
    expect(Buffer.from(caps['cpu0-id']!, 'base64').length).toBe(64);
    expect([caps.cbitpos, caps['reduced-phys-bits']]).toEqual([51, 1]);
    const rep = await vm.qmpClient!.querySevAttestationReport('AAAA').catch((e) => e);
    expect(rep.desc).toBe('SEV: mnonce must be 16 bytes (got 3)');
    const early = await vm.qmpClient!.sevInjectLaunchSecret({ 'packet-header': 'AAAA', secret: 'AAAA' }).catch((e) => e);
    expect(early.desc).toMatch(/^SEV: failed to inject secret/);
    await vm.resume();
    const late = await vm.qmpClient!.sevInjectLaunchSecret({ 'packet-header': Buffer.alloc(52).toString('base64'), secret: 'AAAA' }).catch((e) => e);
    expect(late.desc).toBe('SEV: Not in correct state. (LSECRET) 3'); // QEMU prints the SevState number with %x
    await vm.stop();
  });
});

describe("the wrapper runs one client's commands in order, like QEMU's monitor", () => {
  it('inject then cont sent back to back: the secret goes in before LAUNCH_FINISH', async () => {
    const sim = await makeSimEnv({ realQemu: 'none' });
    const root = tmpRunRoot('simorder');
    try {
      const pdh = fs.readFileSync(path.join(sim.stateDir, 'pdh.cert'));
      const s = createSession(pdh, 0x1);
      const sup = new Supervisor({ qemu: sim.qemu, env: sim.env, runRoot: root });
      const name = `order-${crypto.randomBytes(3).toString('hex')}`;
      const vm = await sup.launch({ name, firmware: AMDSEV, sev: { policy: 1, godh: s.godhB64, session: s.sessionB64 } });
      const m = await vm.measurement();
      const { buildSecret } = await import('../../lib/launch/index.js');
      const b = buildSecret({ tek: s.tek, tik: s.tik, measurement: Buffer.from(m.launchMeasure, 'base64'), plaintext: Buffer.from('pipelined-secret') });
      const q = vm.qmpClient!;
      const [inj, cont] = await Promise.allSettled([
        q.sevInjectLaunchSecret({ 'packet-header': b.header.toString('base64'), secret: b.payload.toString('base64'), gpa: 0x810000 }),
        q.cont(),
      ]);
      expect(inj.status).toBe('fulfilled');
      expect(cont.status).toBe('fulfilled');
      expect((await q.querySev()).state).toBe('running');
      expect(fs.readFileSync(path.join(sim.stateDir, 'guests', name, 'launch-secret.bin')).toString()).toBe('pipelined-secret');
      await vm.stop();
    } finally {
      expect(processesMentioning(root)).toEqual([]);
      fs.rmSync(root, { recursive: true, force: true });
      sim.cleanup();
    }
  });
});
