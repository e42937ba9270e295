/**
 * The reference CRN with SEV-SNP instances on the simulator (QEMU wrapper playing 9.2, VM-less): an
 * SNP allocation starts at once through the SupervisorLauncher, the guest agent's port is forwarded
 * (the test's locator stands in for the simulated guest side: an echo "agent" per VM), the legacy
 * endpoints refuse it clearly, the list shows its port, the forwarder closes with the VM, an abusive
 * client of one VM's forwarder does not reach another's, a SEV VM runs beside it, and a restarted CRN
 * adopts the SNP VM and forwards again. Nothing is left running after.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { VECTORS } from '../helpers/cli.js';
import { filesUnder, processesMentioning, tmpRunRoot } from '../vm/helpers.js';
import { EthWallet } from '../../lib/aleph/wallet.js';
import { CrnClient, CrnHttpError } from '../../lib/owner/client.js';
import { launchOnCrn } from '../../lib/owner/launch.js';
import { encodeCaChain } from '../../lib/certs/index.js';
import { simulatorCaChain } from '../../lib/sim/ca-chain.js';
import { makeDemoFirmware } from '../../lib/demo/demo.js';
import { Supervisor } from '../../lib/vm/index.js';
import { startCrnServer, type CrnServer } from '../../lib/crn/server.js';
import { platformCertificateSource, SupervisorLauncher, type SnpAgentLocator } from '../../lib/crn/launchers.js';
import { instanceToAllocation } from '../../lib/crn/allocations.js';

const simReason = process.env.SEVKIT_SIM_UNAVAILABLE;
const AMDSEV_SUFFIX = path.join(VECTORS, 'sev-snp-measure/ovmf_AmdSev_suffix.bin');
const TOKEN = crypto.randomBytes(16).toString('hex');
const owner = EthWallet.generate();
const newRef = () => crypto.randomBytes(32).toString('hex');

/** Echo "agents", one per VM ref: each line it gets back is prefixed with the ref, so a relay to the wrong VM shows. */
class Agents {
  readonly servers = new Map<string, net.Server>();
  closed: string[] = [];
  readonly locate: SnpAgentLocator = async ({ ref }) => {
    const conns = new Set<net.Socket>();
    const srv = net.createServer((c) => {
      conns.add(c);
      c.on('close', () => conns.delete(c));
      c.on('error', () => undefined);
      c.on('data', (d: Buffer) => c.write(`${ref.slice(0, 8)}:${d.toString()}`));
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    this.servers.set(ref, srv);
    const port = (srv.address() as net.AddressInfo).port;
    return {
      host: '127.0.0.1',
      port,
      close: () =>
        new Promise<void>((r) => {
          this.closed.push(ref);
          this.servers.delete(ref);
          srv.close(() => r());
          for (const c of conns) c.destroy();
        }),
    };
  };
}

/** Connects, sends `msg`, resolves with what comes back (or the error code / 'closed'). */
function exchange(port: number, msg: string, ms = 20_000): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    const t = setTimeout(() => {
      s.destroy();
      resolve(`timeout:${got}`);
    }, ms);
    const done = (v: string) => {
      clearTimeout(t);
      s.destroy();
      resolve(v);
    };
    s.on('connect', () => s.write(msg));
    s.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.includes(msg)) done(got);
    });
    s.on('error', (e: NodeJS.ErrnoException) => done(`error:${e.code}`));
    s.on('close', () => done(got || 'closed'));
  });
}

async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 90_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(!!simReason)('CRN: SEV-SNP instances on the simulator', () => {
  let root: string;
  let snpFirmware: string;
  let sevFirmware: string;
  const agents = new Agents();
  const env = { ...process.env, SEVKIT_SIM_QEMU_VERSION: '9.2.0', SEVKIT_REAL_QEMU: 'none' };
  let supervisor: Supervisor;
  let srv: CrnServer;

  async function start(): Promise<CrnServer> {
    supervisor = new Supervisor({
      runRoot: path.join(root, 'vms'),
      env,
      launchTimeoutMs: 60_000,
      stopTimeoutMs: 5_000,
      ...(process.env.SEVKIT_QEMU ? { qemu: process.env.SEVKIT_QEMU } : {}),
    });
    return startCrnServer({
      host: '127.0.0.1',
      port: 0,
      domain: '127.0.0.1',
      certs: await platformCertificateSource({ testCa: simulatorCaChain(process.env.SEVKIT_SIM_STATE!) }),
      launcher: new SupervisorLauncher(supervisor, { snpAgent: agents.locate }),
      runDir: path.join(root, 'crn'),
      allocationToken: TOKEN,
      platformKind: 'simulated',
      forward: { maxConnections: 3, idleTimeoutMs: 60_000 },
    });
  }

  async function allocateSnp(ref: string): Promise<number> {
    const r = await new CrnClient({ url: srv.url }).allocate(TOKEN, {
      ref,
      owner: owner.address,
      firmware: snpFirmware,
      policy: 0x30000,
      vcpus: 1,
      memory_mb: 256,
      tee: 'sev_snp',
    });
    expect(r).toMatchObject({ ref, tee: 'sev_snp' });
    await until(`SNP VM ${ref} running`, () => srv.service.state(ref) === 'running' || srv.service.state(ref) === 'failed');
    expect(srv.service.list().find((v) => v.ref === ref)).toMatchObject({ state: 'running', tee: 'sev_snp' });
    return srv.service.agentPort(ref)!;
  }

  beforeAll(async () => {
    root = tmpRunRoot('crnsnp');
    // -bios takes whole 64 KiB: the AmdSev fixture's tail (footer table, SEV metadata) at the end of 64 KiB.
    snpFirmware = path.join(root, 'OVMF.snp.fd');
    fs.writeFileSync(snpFirmware, Buffer.concat([Buffer.alloc(60 * 1024), fs.readFileSync(AMDSEV_SUFFIX)]));
    sevFirmware = makeDemoFirmware(root).path;
    srv = await start();
  });

  afterAll(async () => {
    await srv?.close();
    await supervisor?.close();
    expect(agents.servers.size).toBe(0);
    expect(processesMentioning(root)).toEqual([]);
    for (const f of [snpFirmware, sevFirmware]) fs.rmSync(f, { force: true });
    // The run dir is the operator's; the CRN leaves it empty (rmdir fails on anything left in it).
    fs.rmdirSync(path.join(root, 'crn'));
    expect(filesUnder(root)).toEqual([]);
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('an SNP allocation runs at once; the agent port relays bytes; the list shows it; legacy endpoints refuse it', async () => {
    const ref = newRef();
    const port = await allocateSnp(ref);
    expect(port).toBeGreaterThan(0);
    expect(await exchange(port, 'hello\n')).toBe(`${ref.slice(0, 8)}:hello\n`);
    const list = (await (await fetch(`${srv.url}/about/executions/list`)).json()) as Record<string, unknown>;
    expect(list[ref]).toEqual({
      awaiting_confidential_init: false,
      state: 'running',
      tee: 'sev_snp',
      mapped_ports: { '8443': { host: port, tcp: true, udp: false } },
    });
    // The machine record keeps it as an SNP VM with its port.
    const rec = JSON.parse(fs.readFileSync(path.join(root, 'crn', 'machines', `${ref}.json`), 'utf8')) as Record<string, unknown>;
    expect(rec).toMatchObject({ tee: 'sev_snp', port, state: 'running', policy: 0x30000 });

    const client = new CrnClient({ url: srv.url, wallet: owner });
    const m = await client.measurementOnce(ref);
    expect(m.status).toBe(409);
    expect(m.detail).toMatch(/SNP: attest the guest directly/);
    expect(m.detail).toContain(`port ${port}`);
    const inj = (await client
      .injectSecret(ref, { packet_header: Buffer.alloc(52).toString('base64'), secret: 'AAAA' })
      .catch((e: unknown) => e)) as CrnHttpError;
    expect(inj).toBeInstanceOf(CrnHttpError);
    expect(inj.status).toBe(409);
    expect(inj.message).toMatch(/SNP: attest the guest directly.*no secret channel/);
    const init = (await client.initialize(ref, { session: 'AAAA', godh: 'AAAA' }).catch((e: unknown) => e)) as CrnHttpError;
    expect([init.status, /no launch session/.test(init.message)]).toEqual([409, true]);
    // The owner's key checks still come first: a stranger learns nothing about the VM's kind.
    const stranger = await new CrnClient({ url: srv.url, wallet: EthWallet.generate() }).measurementOnce(ref);
    expect(stranger.status).toBe(403);
  });

  it('a stalled or abusive client of one VM forwarder hurts only itself; another VM relays on', async () => {
    const a = newRef();
    const b = newRef();
    const [pa, pb] = [await allocateSnp(a), await allocateSnp(b)];
    // Fill A's bound with connections that send nothing, then one more: refused at accept.
    const stalled = await Promise.all(
      [0, 1, 2].map(
        () =>
          new Promise<net.Socket>((r) => {
            const s = net.connect(pa, '127.0.0.1', () => r(s));
            s.on('error', () => undefined);
          }),
      ),
    );
    // B is untouched (and, the server being in this process, the exchange lets A's accepts run first).
    expect(await exchange(pb, 'still\n')).toBe(`${b.slice(0, 8)}:still\n`);
    expect(await exchange(pa, 'four\n')).toMatch(/^(closed|error:ECONNRESET)$/);
    for (const s of stalled) s.destroy();
    // A serves again once the stalled ones are gone.
    await until('A free again', async () => (await exchange(pa, 'again\n', 5_000)) === `${a.slice(0, 8)}:again\n`, 30_000);
  });

  it('the forwarder closes with the VM (QEMU gone), and the agent endpoint is let go', async () => {
    const ref = newRef();
    const port = await allocateSnp(ref);
    const open = net.connect(port, '127.0.0.1');
    const closedP = new Promise<void>((r) => open.on('close', () => r()));
    open.on('error', () => undefined);
    process.kill(-supervisor.get(ref)!.pid!, 'SIGKILL');
    await until('VM gone', () => srv.service.state(ref) === 'stopped' || srv.service.state(ref) === 'failed');
    await closedP;
    expect(await exchange(port, 'x')).toMatch(/^error:ECONNREFUSED$/);
    await until('agent released', () => agents.closed.includes(ref), 20_000);
  });

  it('an SEV VM launches beside the SNP VMs with the legacy flow', async () => {
    const ref = newRef();
    await new CrnClient({ url: srv.url }).allocate(TOKEN, { ref, owner: owner.address, firmware: sevFirmware, policy: 1, vcpus: 1, memory_mb: 256 });
    const ca = simulatorCaChain(process.env.SEVKIT_SIM_STATE!)!;
    const res = await launchOnCrn({
      client: new CrnClient({ url: srv.url, wallet: owner }),
      ref,
      firmware: fs.readFileSync(sevFirmware),
      policy: 1,
      secret: Buffer.from('pw'),
      ca: encodeCaChain(ca),
      measurementTimeoutMs: 60_000,
    });
    expect(res.status).toMatchObject({ running: true });
    const list = (await (await fetch(`${srv.url}/about/executions/list`)).json()) as Record<string, Record<string, unknown>>;
    expect(list[ref]).toEqual({ awaiting_confidential_init: false, state: 'running' });
    expect(Object.values(list).some((v) => v.tee === 'sev_snp' && v.state === 'running')).toBe(true);
  });

  it('a restarted CRN adopts a running SNP VM and forwards its agent again', async () => {
    const ref = newRef();
    const port = await allocateSnp(ref);
    await srv.close({ keepVms: true });
    expect(agents.closed).toContain(ref);
    expect(await exchange(port, 'x')).toBe('error:ECONNREFUSED');
    srv = await start();
    const report = await srv.service.restored();
    expect(report.adopted).toContain(ref);
    expect(srv.service.list().find((v) => v.ref === ref)).toMatchObject({ state: 'running', tee: 'sev_snp', port });
    expect(await exchange(port, 'back\n')).toBe(`${ref.slice(0, 8)}:back\n`);
  });
});

describe('aleph INSTANCE messages: trusted_execution.mode', () => {
  const msg = (te: Record<string, unknown>) => ({
    type: 'INSTANCE',
    content: { address: owner.address, environment: { hypervisor: 'qemu', trusted_execution: te }, resources: { vcpus: 2, memory: 512 } },
  });
  const o = { resolveFirmware: () => '/fw/OVMF.fd' };
  const ref = 'a'.repeat(64);
  it("sev_snp makes an SNP allocation with QEMU's default policy; no mode is the legacy flow; others are refused by name", () => {
    expect(instanceToAllocation(ref, msg({ firmware: 'b'.repeat(64), mode: 'sev_snp' }), o)).toMatchObject({ tee: 'sev_snp', policy: 0x30000 });
    expect(instanceToAllocation(ref, msg({ firmware: 'b'.repeat(64) }), o)).not.toHaveProperty('tee');
    expect(() => instanceToAllocation(ref, msg({ firmware: 'b'.repeat(64), mode: 'tdx' }), o)).toThrow(/trusted_execution.mode "tdx" is not supported/);
  });
});
