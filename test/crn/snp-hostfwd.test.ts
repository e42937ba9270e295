/**
 * `crn serve --snp-agent hostfwd`: SNP guests get QEMU user networking with their agent port 8443
 * forwarded from a free 127.0.0.1 port the launcher chose, kept in the VM's spec (vm.json) so the
 * next CRN adopting the VM forwards to the same port. The argv is checked exactly, and Debian's real
 * QEMU 7.2 (when installed) accepts the -netdev string and sets up the forward.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { startCrnServe, VECTORS, type CrnServeProcess } from '../helpers/cli.js';
import { filesUnder, processesMentioning, tmpRunRoot } from '../vm/helpers.js';
import { EthWallet } from '../../lib/aleph/wallet.js';
import { CrnClient } from '../../lib/owner/client.js';
import { buildSnpQemuArgv, hostForwardNetdev } from '../../lib/vm/snp.js';
import { freeLoopbackPort } from '../../lib/crn/launchers.js';

const simReason = process.env.SEVKIT_SIM_UNAVAILABLE;
const AMDSEV_SUFFIX = path.join(VECTORS, 'sev-snp-measure/ovmf_AmdSev_suffix.bin');
const REAL_QEMU = '/usr/bin/qemu-system-x86_64';
const TOKEN = crypto.randomBytes(16).toString('hex');
const ENV = { SEVKIT_SIM_QEMU_VERSION: '9.2.0', SEVKIT_REAL_QEMU: 'none', SEVKIT_ALLOCATION_TOKEN: TOKEN };
const owner = EthWallet.generate();

async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 120_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Sends `msg` to 127.0.0.1:port and resolves what comes back once it holds `msg` (or why not). */
function exchange(port: number, msg: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    const done = (v: string) => (s.destroy(), resolve(v));
    s.setTimeout(20_000, () => done(`timeout:${got}`));
    s.on('connect', () => s.write(msg));
    s.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.includes(msg)) done(got);
    });
    s.on('error', (e: NodeJS.ErrnoException) => done(`error:${e.code}`));
    s.on('close', () => done(got || 'closed'));
  });
}

describe('SNP argv: the agent port through QEMU user networking', () => {
  const base = {
    qemu: 'qemu-system-x86_64',
    memMb: 512,
    vcpus: 1,
    firmware: '/fw/OVMF.fd',
    qmpSocket: '/run/vm/qmp.sock',
    snp: { cbitpos: 51, reducedPhysBits: 1 },
  };

  it('adds exactly one virtio NIC on a user netdev forwarding 127.0.0.1:PORT to guest 8443; refuses bad ports and a tap beside it', () => {
    const argv = buildSnpQemuArgv({ ...base, hostForward: { hostPort: 45678, guestPort: 8443 } });
    const i = argv.indexOf('-netdev');
    expect(argv.slice(i - 2, i + 2)).toEqual(['-device', 'virtio-net-pci,netdev=net0', '-netdev', 'user,id=net0,hostfwd=tcp:127.0.0.1:45678-:8443']);
    expect(argv.filter((a) => a === '-netdev')).toHaveLength(1);
    expect(buildSnpQemuArgv(base)).not.toContain('-netdev');
    for (const hostPort of [0, 65536, 1.5, -1])
      expect(() => hostForwardNetdev({ hostPort, guestPort: 8443 })).toThrow(
        new RegExp(`host forward port must be a TCP port \\(1..65535\\), got ${hostPort}`),
      );
    expect(() => buildSnpQemuArgv({ ...base, tapInterface: 'tap0', hostForward: { hostPort: 4000, guestPort: 8443 } })).toThrow(
      /a tap interface or a host forward, not both/,
    );
  });

  it.skipIf(!fs.existsSync(REAL_QEMU))("Debian's QEMU 7.2 accepts the -netdev string and sets up the forward; a bad rule is refused", async () => {
    const port = await freeLoopbackPort();
    const run = (netdev: string, qmp: string): Promise<{ code: number | null; out: string }> =>
      new Promise((resolve, reject) => {
        const q = spawn(REAL_QEMU, [
          '-machine',
          'q35',
          '-accel',
          'tcg',
          '-S',
          '-display',
          'none',
          '-nodefaults',
          '-netdev',
          netdev,
          '-device',
          'virtio-net-pci,netdev=net0',
          '-qmp',
          'stdio',
        ]);
        let out = '';
        q.stdout.on('data', (d: Buffer) => (out += d.toString()));
        q.stderr.on('data', (d: Buffer) => (out += d.toString()));
        const t = setTimeout(() => q.kill('SIGKILL'), 60_000);
        q.on('error', reject);
        q.on('close', (code) => (clearTimeout(t), resolve({ code, out })));
        q.stdin.end(qmp);
      });
    const ok = await run(
      hostForwardNetdev({ hostPort: port, guestPort: 8443 }),
      '{"execute":"qmp_capabilities"}\n{"execute":"human-monitor-command","arguments":{"command-line":"info usernet"}}\n{"execute":"quit"}\n',
    );
    expect(ok.code, ok.out).toBe(0);
    expect(ok.out).toMatch(new RegExp(`TCP\\[HOST_FORWARD\\]\\s+\\d+\\s+127\\.0\\.0\\.1\\s+${port}\\s+10\\.0\\.2\\.15\\s+8443`));
    const bad = await run('user,id=net0,hostfwd=tcp:127.0.0.1:x-:8443', '');
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/Invalid host forwarding rule/);
  });
});

describe.skipIf(!!simReason)('crn serve --snp-agent hostfwd', { timeout: 300_000 }, () => {
  let root: string;
  let firmware: string;
  let guest: net.Server | undefined;
  const serves: CrnServeProcess[] = [];

  beforeAll(() => {
    root = tmpRunRoot('snphostfwd');
    firmware = path.join(root, 'OVMF.snp.fd');
    fs.writeFileSync(firmware, Buffer.concat([Buffer.alloc(60 * 1024), fs.readFileSync(AMDSEV_SUFFIX)]));
  });
  afterAll(async () => {
    for (const s of serves) await s.stop();
    guest?.close();
    expect(processesMentioning(root)).toEqual([]);
    fs.rmSync(root, { recursive: true, force: true });
  });

  async function serve(runDir: string, extra: string[]): Promise<CrnServeProcess> {
    const s = await startCrnServe(['--listen', '127.0.0.1:0', '--domain', '127.0.0.1', '--run-dir', runDir, '--snp-agent', 'hostfwd', ...extra], {
      env: ENV,
      timeoutMs: 120_000,
    });
    serves.push(s);
    return s;
  }
  const entry = async (url: string, ref: string) =>
    (
      (await (await fetch(`${url}/about/executions/list`)).json()) as Record<
        string,
        { state: string; mapped_ports?: Record<string, { host: number }> } | undefined
      >
    )[ref];

  it('forwards to the port in the VM spec, and a CRN adopting the VM (--keep-vms) forwards to the same one', async () => {
    const runDir = path.join(root, 'run');
    const s1 = await serve(runDir, ['--keep-vms']);
    const ref = crypto.randomBytes(32).toString('hex');
    await new CrnClient({ url: s1.url }).allocate(TOKEN, { ref, owner: owner.address, firmware, policy: 0x30000, vcpus: 1, memory_mb: 256, tee: 'sev_snp' });
    await until('SNP VM running', async () => (await entry(s1.url, ref))?.state === 'running');
    const vmDir = path.join(
      runDir,
      'vms',
      fs.readdirSync(path.join(runDir, 'vms')).find((n) => n.startsWith(ref.slice(0, 24)))!,
    );
    const spec = () =>
      (JSON.parse(fs.readFileSync(path.join(vmDir, 'vm.json'), 'utf8')) as { spec: { hostForward?: { hostPort: number; guestPort: number } } }).spec;
    const fwd = spec().hostForward!;
    expect(fwd.guestPort).toBe(8443);
    expect(fwd.hostPort).toBeGreaterThan(0);
    // The wrapper is VM-less (nothing binds the hostfwd port): this test plays the guest's agent behind it.
    guest = net.createServer((c) => {
      c.on('error', () => undefined);
      c.on('data', (d: Buffer) => c.write(`guest:${d.toString()}`));
    });
    await new Promise<void>((r) => guest!.listen(fwd.hostPort, '127.0.0.1', r));
    const port1 = (await entry(s1.url, ref))!.mapped_ports!['8443']!.host;
    expect(port1).not.toBe(fwd.hostPort);
    expect(await exchange(port1, 'one\n')).toBe('guest:one\n');

    await s1.stop();
    expect(s1.proc.exitCode).toBe(0);
    expect(fs.existsSync(path.join(vmDir, 'vm.json'))).toBe(true);
    // The second one forwards on every address (--agent-host 0.0.0.0: owners elsewhere reach mapped_ports).
    const s2 = await serve(runDir, ['--agent-host', '0.0.0.0']);
    await until('adopted', () => /adopted 1 running VM/.test(s2.stderr()), 60_000);
    const e2 = await entry(s2.url, ref);
    expect(e2?.state).toBe('running');
    expect(spec().hostForward).toEqual(fwd);
    const port2 = e2!.mapped_ports!['8443']!.host;
    expect(await exchange(port2, 'two\n')).toBe('guest:two\n');
    const listening = fs
      .readFileSync('/proc/net/tcp', 'utf8')
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f[3] === '0A')
      .map((f) => f[1]);
    expect(listening).toContain(`00000000:${port2.toString(16).toUpperCase().padStart(4, '0')}`);
    await s2.stop();
    expect(processesMentioning(runDir)).toEqual([]);
    expect(filesUnder(runDir)).toEqual([]);
  });
});
