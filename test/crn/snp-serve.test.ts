/**
 * `sevkit crn serve` runs the SEV-SNP flow with the CLI alone, on the simulator (the QEMU wrapper
 * playing 9.2, VM-less): `--snp-agent sim` (the default there) starts the real `sevkit guest agent`
 * per SNP VM in its simulated guest; the owner attests through the forwarded port and its signed
 * secret lands 0600 in that guest's secrets dir; a VM that ends takes its agent process and port
 * with it; SIGTERM to the CRN leaves no process and no file. Bad `--snp-agent` values exit 2 in one
 * line, and `none` refuses SNP allocations at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { runCli, startCrnServe, VECTORS, type CrnServeProcess } from '../helpers/cli.js';
import { filesUnder, processesMentioning, tmpRunRoot } from '../vm/helpers.js';
import { EthWallet } from '../../lib/aleph/wallet.js';
import { CrnClient, CrnHttpError } from '../../lib/owner/client.js';
import { attestAndInject, AttestRefusedError } from '../../lib/owner/attest.js';
import { KdsClient } from '../../lib/snp/kds.js';
import { loadSnpFirmware, snpLaunchDigest } from '../../lib/snp/digest.js';
import type { SnpProduct } from '../../lib/snp/product.js';
import type { ProductRoots } from '../../lib/snp/roots.js';
import { SimPlatform } from '../../lib/sim/platform.js';
import { SimSnpGuest } from '../../lib/sim/snp/guest.js';
import { SimKdsServer } from '../../lib/sim/snp/kds-server.js';

const simReason = process.env.SEVKIT_SIM_UNAVAILABLE;
const AMDSEV_SUFFIX = path.join(VECTORS, 'sev-snp-measure/ovmf_AmdSev_suffix.bin');
const TOKEN = crypto.randomBytes(16).toString('hex');
const ENV = { SEVKIT_SIM_QEMU_VERSION: '9.2.0', SEVKIT_REAL_QEMU: 'none', SEVKIT_ALLOCATION_TOKEN: TOKEN };
const owner = EthWallet.generate();
const newRef = () => crypto.randomBytes(32).toString('hex');

async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 120_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Resolves 'open' or the connect error's code. */
function probe(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.setTimeout(10_000, () => (s.destroy(), resolve('timeout')));
    s.once('connect', () => (s.destroy(), resolve('open')));
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
}

/** Live `sevkit guest agent` processes started under `dir`. */
function agentsUnder(dir: string): number[] {
  return processesMentioning(dir).filter((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('guest\0agent\0');
    } catch {
      return false;
    }
  });
}

/** The run dir the supervisor made for VM `ref` under the CRN's run dir. */
function vmRunDir(runDir: string, ref: string): string {
  const root = path.join(runDir, 'vms');
  const d = fs.readdirSync(root).find((n) => n.startsWith(`${ref.slice(0, 24)}-`));
  if (!d) throw new Error(`no run dir for ${ref} in ${root}`);
  return path.join(root, d);
}

describe.skipIf(!!simReason)('sevkit crn serve: SEV-SNP with the CLI alone (--snp-agent)', { timeout: 400_000 }, () => {
  let root: string;
  let firmware: string;
  let kds: SimKdsServer;
  let roots: (p: SnpProduct) => ProductRoots;
  const serves: CrnServeProcess[] = [];

  async function serve(runDir: string, extra: string[] = []): Promise<CrnServeProcess> {
    const s = await startCrnServe(['--listen', '127.0.0.1:0', '--domain', '127.0.0.1', '--run-dir', runDir, ...extra], { env: ENV, timeoutMs: 120_000 });
    serves.push(s);
    return s;
  }

  /** Allocates an SNP VM of `owner` booting `fw`; resolves the forwarded agent port once it runs. */
  async function allocateSnp(url: string, ref: string, fw = firmware): Promise<number> {
    await new CrnClient({ url }).allocate(TOKEN, { ref, owner: owner.address, firmware: fw, policy: 0x30000, vcpus: 2, memory_mb: 256, tee: 'sev_snp' });
    let entry: { state?: string; mapped_ports?: Record<string, { host: number }> } | undefined;
    await until(`SNP VM ${ref} running`, async () => {
      const list = (await (await fetch(`${url}/about/executions/list`)).json()) as Record<string, typeof entry>;
      entry = list[ref];
      return entry?.state === 'running' || entry?.state === 'failed' || entry === undefined;
    });
    expect(entry).toMatchObject({ state: 'running', tee: 'sev_snp' });
    return entry!.mapped_ports!['8443']!.host;
  }

  const attest = (port: number, fw: string, secret: string) =>
    attestAndInject({
      url: `https://127.0.0.1:${port}`,
      expected: { firmware: loadSnpFirmware(fs.readFileSync(fw), 'the owner firmware', { allowNoMetadata: true }), vcpus: 2 },
      wallet: owner,
      secrets: { disk_password: secret },
      kds: new KdsClient({ baseUrl: kds.url, cacheDir: path.join(root, 'kds-cache') }),
      roots,
      deadlineMs: 120_000,
    });

  beforeAll(async () => {
    root = tmpRunRoot('snpserve');
    // -bios takes whole 64 KiB: the AmdSev fixture's tail (footer table, SEV metadata) at the end of 64 KiB.
    firmware = path.join(root, 'OVMF.snp.fd');
    fs.writeFileSync(firmware, Buffer.concat([Buffer.alloc(60 * 1024), fs.readFileSync(AMDSEV_SUFFIX)]));
    const guest = new SimSnpGuest(SimPlatform.open(process.env.SEVKIT_SIM_STATE!));
    kds = await SimKdsServer.start(guest);
    roots = (p: SnpProduct): ProductRoots => guest.testRoots(p);
  });

  afterAll(async () => {
    for (const s of serves) await s.stop();
    await kds?.close();
    expect(processesMentioning(root)).toEqual([]);
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('sim (the default): attest through the forwarded port, the secret lands 0600; the VM ends → its agent and port go; SIGTERM → nothing left', async () => {
    const runDir = path.join(root, 'run-sim');
    const s = await serve(runDir);
    const ref = newRef();
    const port = await allocateSnp(s.url, ref);
    expect(agentsUnder(runDir)).toHaveLength(1);
    // In the VM's simulated guest, without the host's credentials.
    const environ = fs.readFileSync(`/proc/${agentsUnder(runDir)[0]}/environ`, 'utf8').split('\0');
    expect(environ).toContain(`SEVKIT_SIM_GUEST=${ref}`);
    expect(environ.filter((e) => e.includes(TOKEN))).toEqual([]);
    const password = crypto.randomBytes(18).toString('base64url');
    const res = await attest(port, firmware, password);
    expect(res.injected).toEqual(['disk_password']);
    expect(res.verdict.checks.filter((c) => c.outcome === 'fail')).toEqual([]);
    const dir = vmRunDir(runDir, ref);
    const f = path.join(dir, 'secrets', 'disk_password');
    expect(fs.readFileSync(f, 'utf8')).toBe(password);
    expect(fs.statSync(f).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(dir, 'secrets')).mode & 0o777).toBe(0o700);
    // The agent process is the VM's: QEMU gone → the agent is stopped and reaped, the port closed.
    const agentPid = agentsUnder(runDir)[0]!;
    const rec = JSON.parse(fs.readFileSync(path.join(dir, 'vm.json'), 'utf8')) as { pgid: number };
    process.kill(-rec.pgid, 'SIGKILL');
    await until('agent process gone', () => !agentsUnder(runDir).includes(agentPid));
    await until('VM stopped', async () => {
      const list = (await (await fetch(`${s.url}/about/executions/list`)).json()) as Record<string, { state: string } | undefined>;
      return list[ref] === undefined || list[ref].state !== 'running';
    });
    expect(await probe(port)).toBe('ECONNREFUSED');
    expect(fs.existsSync(dir)).toBe(false);

    // Another VM running with its agent; SIGTERM to the CRN stops both and leaves nothing.
    await allocateSnp(s.url, newRef());
    expect(agentsUnder(runDir)).toHaveLength(1);
    await s.stop();
    expect(s.proc.exitCode).toBe(0);
    expect(processesMentioning(runDir)).toEqual([]);
    expect(filesUnder(runDir)).toEqual([]);
  });

  it("two SNP VMs at once each attest with their own measurement; the other VM's firmware is refused with nothing sent", async () => {
    const runDir = path.join(root, 'run-two');
    const s = await serve(runDir);
    // A second firmware, one bit different (in the padding before the AmdSev tail): another launch digest.
    const other = path.join(root, 'OVMF.other.fd');
    const img = fs.readFileSync(firmware);
    img[0x1000] ^= 0x01;
    fs.writeFileSync(other, img);
    const [a, b] = [newRef(), newRef()];
    const [pa, pb] = await Promise.all([allocateSnp(s.url, a, firmware), allocateSnp(s.url, b, other)]);
    expect(agentsUnder(runDir)).toHaveLength(2);
    const [ra, rb] = await Promise.all([attest(pa, firmware, 'secret-a'), attest(pb, other, 'secret-b')]);
    const digest = (fw: string) => snpLaunchDigest({ firmware: fs.readFileSync(fw), vcpus: 2, vcpuType: 'EPYC-v4' });
    expect(ra.measurement.equals(digest(firmware))).toBe(true);
    expect(rb.measurement.equals(digest(other))).toBe(true);
    expect(ra.measurement.equals(rb.measurement)).toBe(false);
    expect(fs.readFileSync(path.join(vmRunDir(runDir, a), 'secrets', 'disk_password'), 'utf8')).toBe('secret-a');
    expect(fs.readFileSync(path.join(vmRunDir(runDir, b), 'secrets', 'disk_password'), 'utf8')).toBe('secret-b');
    // B's guest reports B's launch, not A's: an owner expecting A's firmware there is refused.
    const refused = await attest(pb, firmware, 'not-for-b').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(AttestRefusedError);
    expect((refused as Error).message).toMatch(/NOT trusted, nothing was sent \(measurement: /);
    expect(fs.readFileSync(path.join(vmRunDir(runDir, b), 'secrets', 'disk_password'), 'utf8')).toBe('secret-b');
    await s.stop();
    expect(processesMentioning(runDir)).toEqual([]);
    expect(filesUnder(runDir)).toEqual([]);
  });

  it('--keep-vms stops the agent with the CRN and the adopting CRN starts a fresh one; a SIGKILLed CRN takes its agent with it', async () => {
    const runDir = path.join(root, 'run-keep');
    const s1 = await serve(runDir, ['--keep-vms']);
    const ref = newRef();
    await allocateSnp(s1.url, ref);
    const [a1] = agentsUnder(runDir);
    expect(a1).toBeDefined();
    await s1.stop();
    expect(s1.proc.exitCode).toBe(0);
    expect(agentsUnder(runDir)).toEqual([]);
    const dir = vmRunDir(runDir, ref);
    expect(fs.existsSync(path.join(dir, 'vm.json'))).toBe(true);

    const s2 = await serve(runDir);
    await until('adopted with a fresh agent', () => /adopted 1 running VM/.test(s2.stderr()) && agentsUnder(runDir).length === 1);
    const list = (await (await fetch(`${s2.url}/about/executions/list`)).json()) as Record<
      string,
      { state: string; mapped_ports: Record<string, { host: number }> }
    >;
    expect(list[ref]?.state).toBe('running');
    const [a2] = agentsUnder(runDir);
    expect(a2).not.toBe(a1);
    const password = crypto.randomBytes(18).toString('base64url');
    expect((await attest(list[ref]!.mapped_ports['8443']!.host, firmware, password)).injected).toEqual(['disk_password']);
    expect(fs.readFileSync(path.join(dir, 'secrets', 'disk_password'), 'utf8')).toBe(password);

    // SIGKILL: nothing in the CRN runs, yet its agent goes (its stdin pipe ends); the VM stays for the next CRN.
    s2.proc.kill('SIGKILL');
    await until('the SIGKILLed CRN’s agent gone', () => agentsUnder(runDir).length === 0);
    const s3 = await serve(runDir);
    await until('adopted again', () => /adopted 1 running VM/.test(s3.stderr()) && agentsUnder(runDir).length === 1);
    await s3.stop();
    expect(processesMentioning(runDir)).toEqual([]);
    expect(filesUnder(runDir)).toEqual([]);
  });

  it('none refuses an SNP allocation at once in one line; bad --snp-agent values exit 2; sim needs the simulator', async () => {
    const s = await serve(path.join(root, 'run-none'), ['--snp-agent', 'none']);
    const err = (await new CrnClient({ url: s.url })
      .allocate(TOKEN, { ref: newRef(), owner: owner.address, firmware, policy: 0x30000, vcpus: 1, memory_mb: 256, tee: 'sev_snp' })
      .catch((e: unknown) => e)) as CrnHttpError;
    expect(err).toBeInstanceOf(CrnHttpError);
    expect(err.status).toBe(400);
    expect(err.message).toMatch(/cannot reach SEV-SNP guest agents/);
    await s.stop();

    const bad = await runCli(['crn', 'serve', '--listen', '127.0.0.1:0', '--domain', 'x', '--run-dir', path.join(root, 'bad'), '--snp-agent', 'ssh'], {
      timeoutMs: 60_000,
    });
    expect([bad.code, bad.stderr.trim()]).toEqual([2, "sevkit: --snp-agent must be sim, hostfwd or none, got 'ssh'"]);
    expect(fs.existsSync(path.join(root, 'bad'))).toBe(false);
    const host = await runCli(['crn', 'serve', '--listen', '127.0.0.1:0', '--domain', 'x', '--run-dir', path.join(root, 'bad'), '--agent-host', 'anywhere'], {
      timeoutMs: 60_000,
    });
    expect([host.code, host.stderr.trim()]).toEqual([2, "sevkit: --agent-host must be an IP address, got 'anywhere'"]);
    expect(fs.existsSync(path.join(root, 'bad'))).toBe(false);
    const hw = await runCli(['crn', 'serve', '--listen', '127.0.0.1:0', '--domain', 'x', '--run-dir', path.join(root, 'bad'), '--snp-agent', 'sim'], {
      timeoutMs: 60_000,
      env: { SEVKIT_SIM_SOCKET: '' },
    });
    expect(hw.code).toBe(2);
    expect(hw.stderr.trim().split('\n')).toHaveLength(1);
    expect(hw.stderr).toMatch(/--snp-agent sim .* needs the simulator/);
  });
});
