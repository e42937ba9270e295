/**
 * The simulator's QEMU wrapper refuses what QEMU 7.2 refuses and accepts what
 * it accepts (issue 13): -smp topologies, C-base sev-guest integers, unknown
 * sev-guest properties, qapi booleans, the sev-device open, CONFIG_ES before
 * an SEV-ES launch, KVM's guest init on an UNINIT platform, GLib base64 in
 * sev-inject-launch-secret and the QAPI argument checks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { VECTORS } from '../helpers/cli.js';
import { parseQemuArgs } from '../../lib/sim/qemu/argv.js';
import { glibBase64Decode } from '../../lib/sim/qemu/guest.js';
import { startSim, type SimSession } from '../../lib/sim/session.js';
import { waitForQmp } from '../../lib/qmp/wait.js';
import type { QmpClient } from '../../lib/qmp/client.js';
import { createSession } from '../../lib/launch/session.js';
import { buildSecret } from '../../lib/launch/secret.js';
import { Cmd } from '../../lib/sim/uapi.js';
import { processesMentioning, tmpRunRoot } from './helpers.js';

const AMDSEV = path.join(VECTORS, 'sev-snp-measure/ovmf_AmdSev_suffix.bin');
const PFLASH = `if=pflash,format=raw,unit=0,file=${AMDSEV},readonly=on`;
const sevArgs = (props: string) => ['-object', `sev-guest,id=s,reduced-phys-bits=1,${props}`, '-machine', 'q35,confidential-guest-support=s'];

describe('QEMU 7.2 argv fidelity', () => {
  it('-smp topologies count every present vCPU (one VMSA each)', () => {
    const v = (...smp: string[]) => parseQemuArgs(smp.flatMap((s) => ['-smp', s])).vcpus;
    expect(v('sockets=2,cores=2')).toBe(4);
    expect(v('sockets=2,cores=2,threads=2')).toBe(8);
    expect(v('4,maxcpus=8')).toBe(4);
    expect(v('cpus=4,sockets=2')).toBe(4);
    expect(v('2', 'cpus=6,sockets=2')).toBe(6); // merged like smp-opts: the later cpus wins
    expect(() => v('2', 'sockets=2,cores=2')).toThrow('threads (0) != maxcpus (2)'); // as QEMU computes it
    expect(v('threads=2')).toBe(2);
    expect(() => v('cpus=5,sockets=2,cores=2')).toThrow('Invalid CPU topology');
    expect(() => v('cores=0')).toThrow('greater than zero');
    expect(() => v('4,nodes=2')).toThrow("Invalid parameter 'nodes'");
  });

  it('integers are C base 0 (0x hex, leading-0 octal) with the uint32 range check', () => {
    const policy = (s: string) => parseQemuArgs(sevArgs(`policy=${s}`)).sev!.policy;
    expect(policy('010')).toBe(8);
    expect(policy('0x10')).toBe(16);
    expect(policy('10')).toBe(10);
    expect(policy('0')).toBe(0);
    expect(() => policy('08')).toThrow("Parameter 'policy' expects integer");
    expect(() => policy('0x100000000')).toThrow("Parameter 'policy' expects uint32_t");
    expect(() => policy('-1')).toThrow("Parameter 'policy' expects uint32_t");
    expect(parseQemuArgs(sevArgs('cbitpos=063')).sev!.cbitpos).toBe(51);
  });

  it('unknown sev-guest properties are refused; kernel-hashes takes qapi booleans (y/n too)', () => {
    expect(() => parseQemuArgs(sevArgs('policy=1,legacy-vm-type=on'))).toThrow("Property 'sev-guest.legacy-vm-type' not found");
    expect(() => parseQemuArgs(sevArgs('polcy=1'))).toThrow("Property 'sev-guest.polcy' not found");
    expect(parseQemuArgs(sevArgs('kernel-hashes=y')).sev!.kernelHashes).toBe(true);
    expect(parseQemuArgs(sevArgs('kernel-hashes=n')).sev!.kernelHashes).toBe(false);
    expect(() => parseQemuArgs(sevArgs('kernel-hashes=maybe'))).toThrow("expects 'on' or 'off'");
  });

  it('GLib base64: line breaks and stray characters are skipped', () => {
    const raw = Buffer.from('a 52-byte packet header, more or less, as an example!');
    const wrapped = raw.toString('base64').replace(/(.{16})/g, '$1\n');
    expect(glibBase64Decode(wrapped).equals(raw)).toBe(true);
  });
});

describe('qmp_capabilities arguments', () => {
  it('refuses unknown capabilities and members like 7.2, and stays in negotiation mode', async () => {
    const { QmpServer } = await import('../../lib/sim/qemu/qmp-server.js');
    const dir = tmpRunRoot('qmpcap');
    const sock = path.join(dir, 'q.sock');
    const server = new QmpServer({ QMP: { version: { qemu: { micro: 0, minor: 2, major: 7 }, package: 'test' }, capabilities: ['oob'] } }, async () => ({}));
    await server.listen(sock);
    const c = net.createConnection(sock);
    const got: Array<Record<string, unknown>> = [];
    let buf = '';
    c.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const m = JSON.parse(buf.slice(0, i)) as Record<string, unknown>;
        buf = buf.slice(i + 1);
        if ('id' in m) got.push(m);
      }
    });
    const send = (o: unknown) => c.write(`${JSON.stringify(o)}\n`);
    send({ execute: 'qmp_capabilities', arguments: { enable: ['bogus'] }, id: 1 });
    send({ execute: 'qmp_capabilities', arguments: { verbose: true }, id: 2 });
    send({ execute: 'qmp_capabilities', arguments: { enable: 'oob' }, id: 3 });
    send({ execute: 'query-status', id: 4 });
    send({ execute: 'qmp_capabilities', arguments: { enable: ['oob'] }, id: 5 });
    const deadline = Date.now() + 30_000;
    while (got.length < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    c.destroy();
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
    expect(got.map((m) => (m.error as { desc?: string } | undefined)?.desc ?? 'ok')).toEqual([
      "Parameter 'enable[0]' does not accept value 'bogus'",
      "Parameter 'verbose' is unexpected",
      "Invalid parameter type for 'enable', expected: array",
      "Expecting capabilities negotiation with 'qmp_capabilities'",
      'ok',
    ]);
  });
});

describe('the wrapper against a simulator daemon', () => {
  let sim: SimSession;
  let root: string;
  const children = new Set<ChildProcess>();
  beforeAll(async () => {
    root = tmpRunRoot('qemufid');
    sim = await startSim({ stateDir: path.join(root, 'state'), seed: '1' });
  }, 120_000);
  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await sim?.close();
    expect(processesMentioning(root)).toEqual([]);
    fs.rmSync(root, { recursive: true, force: true });
  });

  const env = () => ({ ...sim.env, SEVKIT_REAL_QEMU: 'none' });

  function start(args: string[]): { child: ChildProcess; done: Promise<{ code: number | null; stderr: string }> } {
    const child = spawn(sim.env.SEVKIT_QEMU!, args, { env: env(), stdio: ['ignore', 'ignore', 'pipe'] });
    children.add(child);
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const done = new Promise<{ code: number | null; stderr: string }>((resolve) => child.on('close', (code) => resolve({ code, stderr })));
    void done.then(() => children.delete(child));
    return { child, done };
  }

  const lines = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('qemu-system-x86_64:'));

  async function launched(name: string, props: string): Promise<{ child: ChildProcess; qmp: QmpClient; done: Promise<unknown> }> {
    const sock = path.join(root, `${name}.sock`);
    const { child, done } = start(['-S', ...sevArgs(`cbitpos=51,${props}`), '-drive', PFLASH, '-qmp', `unix:${sock},server,nowait`]);
    const ac = new AbortController();
    void done.then((r) => ac.abort(new Error(`wrapper exited: ${JSON.stringify(r)}`)));
    const qmp = await waitForQmp(sock, { timeoutMs: 60_000, signal: ac.signal });
    return { child, qmp, done };
  }

  it('sev-device is opened O_RDWR: a missing node or a non-SEV node fails like QEMU', async () => {
    const missing = await start([...sevArgs(`cbitpos=51,sev-device=${root}/nope`), '-drive', PFLASH, '-qmp', `unix:${root}/a.sock,server,nowait`]).done;
    expect(missing.code).toBe(1);
    expect(lines(missing.stderr)).toEqual([
      `qemu-system-x86_64: sev_kvm_init: Failed to open ${root}/nope 'No such file or directory'`,
      'qemu-system-x86_64: failed to initialize kvm: Operation not permitted',
    ]);
    const notSev = await start([...sevArgs('cbitpos=51,sev-device=/dev/null'), '-drive', PFLASH, '-qmp', `unix:${root}/b.sock,server,nowait`]).done;
    expect(notSev.code).toBe(1);
    expect(lines(notSev.stderr)[0]).toBe("qemu-system-x86_64: sev_kvm_init: failed to get platform status ret=-1 fw_error='0: '");
    // An open fault on the simulated device is QEMU's open failure too.
    sim.daemon.platform.injectFault({ on: 'open', cmd: 'O_RDWR', errno: 'EACCES' });
    const denied = await start([...sevArgs('cbitpos=51'), '-drive', PFLASH, '-qmp', `unix:${root}/c.sock,server,nowait`]).done;
    expect(lines(denied.stderr)[0]).toBe("qemu-system-x86_64: sev_kvm_init: Failed to open /dev/sev 'Permission denied'");
  }, 120_000);

  it("missing firmware, kernel and initrd files fail with QEMU 7.2's own texts, and leave no guest", async () => {
    const p = sim.daemon.platform;
    const guestsBefore = p.guests.size;
    const drive = `if=pflash,format=raw,unit=0,file=${root}/no-ovmf.fd,readonly=on`;
    const pflash = await start([...sevArgs('cbitpos=51'), '-drive', drive, '-qmp', `unix:${root}/d.sock,server,nowait`]).done;
    expect(pflash.code).toBe(1);
    expect(lines(pflash.stderr)).toEqual([`qemu-system-x86_64: -drive ${drive}: Could not open '${root}/no-ovmf.fd': No such file or directory`]);
    const bios = await start([...sevArgs('cbitpos=51'), '-bios', `${root}/no-bios.bin`, '-qmp', `unix:${root}/e.sock,server,nowait`]).done;
    expect(bios.stderr.split('\n')).toContain(`qemu: could not load PC BIOS '${root}/no-bios.bin'`);
    // -bios takes whole 64 KiB; pflash whole 4 KiB sectors.
    const small = await start([...sevArgs('cbitpos=51'), '-bios', AMDSEV, '-qmp', `unix:${root}/g.sock,server,nowait`]).done;
    expect(small.stderr.split('\n')).toContain(`qemu: could not load PC BIOS '${AMDSEV}'`);
    fs.writeFileSync(path.join(root, 'odd.fd'), Buffer.alloc(5000));
    const odd = await start([
      ...sevArgs('cbitpos=51'),
      '-drive',
      `if=pflash,format=raw,unit=0,file=${root}/odd.fd`,
      '-qmp',
      `unix:${root}/h.sock,server,nowait`,
    ]).done;
    expect(lines(odd.stderr)).toEqual([
      'qemu-system-x86_64: system firmware block device pflash0 has invalid size 5000',
      'qemu-system-x86_64: info: its size must be a non-zero multiple of 0x1000',
    ]);
    const hashed = ['-drive', PFLASH, '-append', 'console=ttyS0', '-qmp', `unix:${root}/f.sock,server,nowait`];
    const kernel = await start([...sevArgs('cbitpos=51,kernel-hashes=on'), '-kernel', `${root}/no-vmlinuz`, ...hashed]).done;
    expect(kernel.stderr.split('\n')).toContain(`qemu: could not open kernel file '${root}/no-vmlinuz': No such file or directory`);
    fs.writeFileSync(path.join(root, 'vmlinuz'), 'k');
    const initrd = await start([...sevArgs('cbitpos=51,kernel-hashes=on'), '-kernel', `${root}/vmlinuz`, '-initrd', `${root}/no-initrd`, ...hashed]).done;
    expect(initrd.stderr.split('\n')).toContain(
      `qemu: error reading initrd ${root}/no-initrd: Failed to open file \u201c${root}/no-initrd\u201d: No such file or directory`,
    );
    expect(p.guests.size).toBe(guestsBefore);
  }, 120_000);

  it("after a reset (UNINIT): SEV-ES fails on CONFIG_ES with QEMU's message; SEV guest init INITs the platform", async () => {
    const p = sim.daemon.platform;
    expect(p.ioctl({ cmd: Cmd.FACTORY_RESET, writable: true, dataNull: true, struct: Buffer.alloc(0), blobs: [] }).errno).toBe(0);
    expect(p.state).toBe('UNINIT');
    const es = await start([...sevArgs('cbitpos=51,policy=0x5'), '-cpu', 'EPYC-v4', '-drive', PFLASH, '-qmp', `unix:${root}/es.sock,server,nowait`]).done;
    expect(es.code).toBe(1);
    expect(lines(es.stderr)).toEqual([
      'qemu-system-x86_64: sev_kvm_init: guest policy requires SEV-ES, but host SEV-ES support unavailable',
      'qemu-system-x86_64: failed to initialize kvm: Operation not permitted',
    ]);
    expect(p.state).toBe('UNINIT');

    const s = createSession(p.certificate('pdh'), 1); // the PDH the reset made: readable before INIT
    fs.writeFileSync(path.join(root, 'godh.b64'), s.godhB64);
    // Line-wrapped base64 in the session file, as GLib reads it.
    fs.writeFileSync(path.join(root, 'session.b64'), s.sessionB64.replace(/(.{64})/g, '$1\n') + '\n');
    const vm = await launched('sev', `policy=1,dh-cert-file=${root}/godh.b64,session-file=${root}/session.b64`);
    const info = await vm.qmp.querySev();
    expect(info.state).toBe('launch-secret');
    expect(p.state).toBe('WORKING');
    const blob = Buffer.from((await vm.qmp.querySevLaunchMeasure()).data, 'base64');

    // sev-inject-launch-secret: QAPI checks first, then GLib base64 (line-wrapped is fine).
    const pkt = buildSecret({ tek: s.tek, tik: s.tik, measurement: blob, plaintext: Buffer.from('0123456789abcdef') });
    const wrap = (b: Buffer) => b.toString('base64').replace(/(.{20})/g, '$1\n');
    const extra = await vm.qmp
      .execute('sev-inject-launch-secret', { 'packet-header': wrap(pkt.header), secret: wrap(pkt.payload), gpa: 0x810000, bogus: 1 })
      .then(
        () => ({ desc: 'no error' }),
        (e: { desc: string }) => e,
      );
    expect(extra.desc).toBe("Parameter 'bogus' is unexpected");
    const missing = await vm.qmp.execute('sev-inject-launch-secret', { secret: 'AAAA' }).then(
      () => ({ desc: 'no error' }),
      (e: { desc: string }) => e,
    );
    expect(missing.desc).toBe("Parameter 'packet-header' is missing");
    const empty = await vm.qmp.execute('sev-inject-launch-secret', { 'packet-header': '!!!!', secret: 'AAAA', gpa: 0 }).then(
      () => ({ desc: 'no error' }),
      (e: { desc: string }) => e,
    );
    expect(empty.desc).toBe('SEV: Failed to decode sequence header');
    await vm.qmp.execute('sev-inject-launch-secret', { 'packet-header': wrap(pkt.header), secret: wrap(pkt.payload), gpa: 0x810000 });
    const qs = await vm.qmp.execute('query-sev', { verbose: true }).then(
      () => ({ desc: 'no error' }),
      (e: { desc: string }) => e,
    );
    expect(qs.desc).toBe("Parameter 'verbose' is unexpected");
    const qst = await vm.qmp.execute('query-status', { x: 1 }).then(
      () => ({ desc: 'no error' }),
      (e: { desc: string }) => e,
    );
    expect(qst.desc).toBe("Parameter 'x' is unexpected");
    vm.qmp.close();
    vm.child.kill('SIGTERM');
    await vm.done;
    expect(p.state).toBe('INIT');
  }, 120_000);

  it('-smp sockets=2,cores=2 launches an SEV-ES guest with 4 VMSAs', async () => {
    const p = sim.daemon.platform;
    const s = createSession(p.certificate('pdh'), 5);
    fs.writeFileSync(path.join(root, 'godh5.b64'), s.godhB64);
    fs.writeFileSync(path.join(root, 'session5.b64'), s.sessionB64);
    const sock = path.join(root, 'smp.sock');
    const { child, done } = start([
      '-S',
      ...sevArgs(`cbitpos=51,policy=0x5,dh-cert-file=${root}/godh5.b64,session-file=${root}/session5.b64`),
      '-cpu',
      'EPYC-v4',
      '-smp',
      'sockets=2,cores=2',
      '-drive',
      PFLASH,
      '-qmp',
      `unix:${sock},server,nowait`,
    ]);
    const ac = new AbortController();
    void done.then((r) => ac.abort(new Error(`wrapper exited: ${JSON.stringify(r)}`)));
    const qmp = await waitForQmp(sock, { timeoutMs: 60_000, signal: ac.signal });
    const blob = Buffer.from((await qmp.querySevLaunchMeasure()).data, 'base64');
    const { verifyMeasurement } = await import('../../lib/launch/index.js');
    const sev = await qmp.querySev();
    const verdict = (numCpus: number) =>
      verifyMeasurement({
        measurement: blob,
        sevInfo: { apiMajor: sev['api-major'], apiMinor: sev['api-minor'], buildId: sev['build-id'], policy: 5 },
        expected: { policy: 5, tik: s.tik, launch: { firmware: fs.readFileSync(AMDSEV), es: { numCpus, vcpuType: 'EPYC-v4', vmType: 'legacy' } } },
        diagnose: false,
      }).match;
    expect(verdict(4)).toBe(true);
    expect(verdict(1)).toBe(false);
    qmp.close();
    child.kill('SIGTERM');
    await done;
  }, 120_000);
});
