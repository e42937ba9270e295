/**
 * `sevkit demo` (`npm run demo`): the whole confidential-VM lifecycle on one
 * machine, on the SIMULATED SEV platform. The outer process starts the
 * simulator and re-runs itself under it (the addon must see the LD_PRELOAD
 * shim from process start); the inner process runs the reference CRN on
 * loopback and the guest owner against it, then tears everything down.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { OVMF_GUIDS, patchOvmfEntry, placeOvmfFooterTable } from '../firmware/ovmf.js';

import { DemoError } from './errors.js';
export { DemoError } from './errors.js';

/** Where the demo firmware declares its launch-secret page (OVMF AmdSev's MEMFD layout puts it in this region). */
const DEMO_SECRET_BASE = 0x80d000;
const DEMO_SECRET_SIZE = 0x1000;
const FIRMWARE_CANDIDATES = [
  '/usr/share/ovmf/OVMF.fd',
  '/usr/share/OVMF/OVMF.fd',
  '/usr/share/OVMF/OVMF_CODE.fd',
  '/usr/share/OVMF/OVMF_CODE_4M.fd',
  '/usr/share/qemu/OVMF.fd',
];

/** How `sevkit demo` runs. */
export interface DemoOptions {
  /** Keep the work directory (firmware, run dirs, simulator state) instead of removing it. */
  keep: boolean;
  /** This process is the inner half, already under the simulator (the outer half starts it). */
  insideSim: boolean;
  /** Never boot a VM: the simulator's QEMU wrapper answers QMP alone. */
  vmLess: boolean;
  /** The environment the demo runs in and hands to its children (the CLI passes its own). */
  env: NodeJS.ProcessEnv;
  /** Where each progress line goes; default stdout. */
  out?: (line: string) => void;
  /** The SEV-SNP lifecycle instead (snp.ts): QEMU 9.2 played, guest agent, attested TLS. */
  snp?: boolean;
}

/** The whole lifecycle on the simulator: an outer process starts it and runs the inner one under it. Resolves the exit code. */
export async function runDemo(o: DemoOptions): Promise<number> {
  if (o.insideSim || o.env.SEVKIT_DEMO_DIR) return inside(o);
  return outside(o);
}

/**
 * The demo's firmware: Debian's OVMF with its SEV secret-area footer entry
 * pointed at a page (stock builds leave it 0 because only the AmdSev build
 * reserves one). Both the CRN and the owner measure this exact file. Without
 * an installed OVMF, a synthetic image with only a footer table (VM-less only).
 */
export function makeDemoFirmware(dir: string): { path: string; source: string; bootable: boolean } {
  const src = FIRMWARE_CANDIDATES.find((f) => {
    try {
      return fs.statSync(f).isFile();
    } catch {
      return false;
    }
  });
  let img: Buffer;
  let bootable = false;
  if (src) {
    img = Buffer.from(fs.readFileSync(src));
    bootable = true;
  } else {
    img = syntheticFirmware();
  }
  const area = Buffer.alloc(8);
  area.writeUInt32LE(DEMO_SECRET_BASE, 0);
  area.writeUInt32LE(DEMO_SECRET_SIZE, 4);
  try {
    patchOvmfEntry(img, OVMF_GUIDS.SEV_SECRET, area, src ?? 'synthetic firmware');
  } catch (e) {
    throw new DemoError(`${src ?? 'synthetic firmware'}: no SEV secret entry in the OVMF footer table (${(e as Error).message})`);
  }
  const file = path.join(dir, 'demo-OVMF.fd');
  fs.writeFileSync(file, img, { mode: 0o644 });
  return { path: file, source: src ?? 'synthetic (no OVMF installed)', bootable };
}

/** 2 MiB of 0xff with an OVMF footer table holding one SEV secret entry (never booted). */
function syntheticFirmware(): Buffer {
  return placeOvmfFooterTable(Buffer.alloc(2 << 20, 0xff), [{ guid: OVMF_GUIDS.SEV_SECRET, data: Buffer.alloc(8) }]);
}

async function outside(o: DemoOptions): Promise<number> {
  const out = o.out ?? ((l: string) => process.stdout.write(`${l}\n`));
  const { startSim } = await import('../sim/session.js');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-demo-'));
  out('sevkit demo: the confidential-VM lifecycle on a SIMULATED SEV platform (software model, TEST roots).');
  out('             Nothing below is backed by AMD hardware; it shows the protocol and the checks, not confidentiality.');
  let sim: Awaited<ReturnType<typeof startSim>> | undefined;
  // Installed for the whole run, not just while the inner process lives: a signal during start-up or
  // teardown (a second Ctrl-C) must not kill this process with the simulator and the temp dir left behind.
  let child: ReturnType<typeof spawn> | undefined;
  let signalled: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    signalled ??= sig;
    if (child && child.exitCode === null && child.signalCode === null) child.kill(sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const t0 = performance.now();
    sim = await startSim({ stateDir: path.join(tmp, 'sim') });
    out(`[sim] simulator started in ${(performance.now() - t0).toFixed(0)} ms (state ${sim.stateDir})`);
    if (signalled) return 128 + (os.constants.signals[signalled] ?? 2);
    const env: NodeJS.ProcessEnv = { ...sim.env, SEVKIT_DEMO_DIR: tmp };
    if (o.vmLess || o.snp) env.SEVKIT_REAL_QEMU = 'none';
    // SNP needs QEMU >= 9.1: the wrapper plays 9.2 (the real 7.2 has no sev-snp-guest).
    if (o.snp) env.SEVKIT_SIM_QEMU_VERSION = '9.2.0';
    const entry = process.argv[1]!;
    const c = spawn(process.execPath, [...process.execArgv, entry, 'demo', '--inside-sim', ...(o.vmLess ? ['--vm-less'] : []), ...(o.snp ? ['--snp'] : [])], {
      stdio: 'inherit',
      env,
    });
    child = c;
    return await new Promise<number>((resolve) => {
      c.on('error', () => resolve(1));
      c.on('close', (code, s) => resolve(code ?? (s ? 128 + (os.constants.signals[s] ?? 0) : 1)));
    });
  } finally {
    await sim?.close();
    if (o.keep) out(`[teardown] kept ${tmp}`);
    else fs.rmSync(tmp, { recursive: true, force: true });
    out('[teardown] simulator stopped, temporary files removed');
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function inside(o: DemoOptions): Promise<number> {
  const out = o.out ?? ((l: string) => process.stdout.write(`${l}\n`));
  const dir = o.env.SEVKIT_DEMO_DIR || fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-demo-'));
  const stateDir = o.env.SEVKIT_SIM_STATE;
  if (!o.env.SEVKIT_SIM_SOCKET || !stateDir) throw new DemoError('sevkit demo --inside-sim must run under `sevkit sim`');
  if (o.snp) {
    const { insideSnp } = await import('./snp.js');
    try {
      return await insideSnp({ env: o.env, dir, out, firmware: makeDemoFirmware(dir) });
    } finally {
      if (!o.env.SEVKIT_DEMO_DIR) fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  const { startCrnServer } = await import('../crn/server.js');
  const { platformCertificateSource, SupervisorLauncher } = await import('../crn/launchers.js');
  const { EthWallet } = await import('../aleph/wallet.js');
  const { Supervisor } = await import('../vm/index.js');
  const { CrnClient } = await import('../owner/client.js');
  const { launchOnCrn } = await import('../owner/launch.js');
  const { encodeCaChain } = await import('../certs/index.js');
  const { simulatorCaChain } = await import('../sim/ca-chain.js');
  const { parseSecretTable, DISK_PASSWORD_GUID } = await import('../launch/index.js');
  const { findRealQemu } = await import('../sim/qemu/main.js').catch(() => ({ findRealQemu: () => undefined as string | undefined }));

  const fw = makeDemoFirmware(dir);
  const realQemu = o.vmLess ? undefined : findRealQemu(o.env);
  const withVm = Boolean(realQemu) && fw.bootable;
  // The simulator's QEMU wrapper (started by the supervisor) answers QMP alone when told there is no real QEMU.
  const vmEnv: NodeJS.ProcessEnv = withVm ? o.env : { ...o.env, SEVKIT_REAL_QEMU: 'none' };
  out(`[host] firmware ${fw.source} → ${fw.path} (secret page declared at 0x${DEMO_SECRET_BASE.toString(16)})`);
  out(
    withVm
      ? `[host] VMs: real QEMU ${realQemu} (TCG) under the simulator's SEV wrapper`
      : "[host] VMs: VM-less (the simulator's QEMU wrapper answers QMP; nothing boots)",
  );

  const token = crypto.randomBytes(24).toString('hex');
  const supervisor = new Supervisor({
    runRoot: path.join(dir, 'vms'),
    launchTimeoutMs: 60_000,
    stopTimeoutMs: 5_000,
    env: vmEnv,
    ...(o.env.SEVKIT_QEMU ? { qemu: o.env.SEVKIT_QEMU } : {}),
  });
  const log: string[] = [];
  const t0 = performance.now();
  const srv = await startCrnServer({
    host: '127.0.0.1',
    port: 0,
    domain: '127.0.0.1',
    certs: await platformCertificateSource({ testCa: simulatorCaChain(stateDir) }),
    launcher: new SupervisorLauncher(supervisor, { kind: withVm ? 'qemu (simulator wrapper)' : 'vm-less (simulator wrapper)' }),
    runDir: path.join(dir, 'crn'),
    allocationToken: token,
    platformKind: 'simulated',
    log: (l) => log.push(l),
  });
  let code = 1;
  // Ctrl-C: stop the VMs (their own process groups) before exiting, never leave QEMU behind. The handler
  // stays for every later signal (a second Ctrl-C, the outer process forwarding the group's signal): the
  // default action would kill this process mid-teardown and abandon the VMs.
  let tearingDown = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (tearingDown) return;
    tearingDown = true;
    out(`[teardown] ${sig}: stopping the CRN and every VM`);
    void srv
      .close()
      .then(() => supervisor.close())
      .finally(() => {
        if (!o.env.SEVKIT_DEMO_DIR) fs.rmSync(dir, { recursive: true, force: true });
        process.exit(128 + (os.constants.signals[sig] ?? 2));
      });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    out(`[crn] reference CRN listening on ${srv.url} (domain 127.0.0.1) in ${(performance.now() - t0).toFixed(0)} ms`);
    const owner = EthWallet.generate();
    const ref = crypto.randomBytes(32).toString('hex');
    const policy = 0x1;
    const t1 = performance.now();
    await new CrnClient({ url: srv.url }).allocate(token, { ref, owner: owner.address, firmware: fw.path, policy, vcpus: 1, memory_mb: 256 });
    out(`[crn] allocated VM ${ref.slice(0, 16)}… for owner ${owner.address}, policy 0x${policy.toString(16)} (${(performance.now() - t1).toFixed(0)} ms)`);

    const ca = simulatorCaChain(stateDir);
    if (!ca) throw new DemoError(`simulator state ${stateDir} has no ask.cert/ark.cert`);
    const password = crypto.randomBytes(18).toString('base64url');
    const pwHash = crypto.createHash('sha256').update(password).digest('hex');
    out(`[owner] disk password: ${password.length} bytes, sha256 ${pwHash.slice(0, 16)}… (the password itself is never printed)`);
    out("[owner] trust anchor: the SIMULATOR's test ASK/ARK (a real launch would use AMD's roots: --generation or --ca)");
    const client = new CrnClient({ url: srv.url, wallet: owner });
    const res = await launchOnCrn({
      client,
      ref,
      firmware: fs.readFileSync(fw.path),
      policy,
      secret: Buffer.from(password),
      ca: encodeCaChain(ca),
      measurementTimeoutMs: 60_000,
      onProgress: (p) => out(`[owner ${p.index}/${p.total}] ${p.step.padEnd(12)} ${p.ms.toFixed(1).padStart(8)} ms  ${p.detail}`),
    });
    const total = Object.values(res.timings).reduce((a, b) => a + b, 0);
    out(`[owner] VM running after ${total.toFixed(0)} ms: ${JSON.stringify(res.status)}`);

    // What the (simulated) firmware put into guest memory, as the guest would read it.
    const guestFile = path.join(stateDir, 'guests', ref, 'launch-secret.bin');
    if (fs.existsSync(guestFile)) {
      const table = fs.readFileSync(guestFile);
      const parsed = parseSecretTable(table);
      const entry = parsed.entries.find((e) => e.guid === DISK_PASSWORD_GUID);
      const got = entry ? entry.data.subarray(0, entry.data.indexOf(0) < 0 ? entry.data.length : entry.data.indexOf(0)) : Buffer.alloc(0);
      const same = got.length === Buffer.byteLength(password) && crypto.timingSafeEqual(got, Buffer.from(password));
      out(
        `[guest] launch-secret.bin: ${table.length}-byte table (${parsed.layout} layout), ${parsed.entries.length} entry, disk-password GUID ${entry ? 'present' : 'MISSING'}`,
      );
      out(
        `[guest] decrypted disk password: ${got.length} bytes, sha256 ${crypto.createHash('sha256').update(got).digest('hex').slice(0, 16)}… → ${same ? 'matches what the owner sent' : 'DOES NOT MATCH'}`,
      );
      table.fill(0);
      got.fill(0);
      if (!same) throw new DemoError("the guest did not receive the owner's secret");
    } else {
      out(`[guest] no launch-secret.bin at ${guestFile}`);
      throw new DemoError('the simulated guest recorded no secret');
    }
    if (withVm) {
      await new Promise((r) => setTimeout(r, 1500));
      const vm = supervisor.get(ref);
      // ANSI escapes out of the serial console
      const lines = (vm?.consoleTail ?? '')
        .split('\n')
        .map((l) =>
          l
            // eslint-disable-next-line no-control-regex
            .replace(/\x1b\[[0-9;]*[A-Za-z]/g, '')
            .replace(/[^\x20-\x7e]/g, '')
            .trim(),
        )
        .filter(Boolean);
      out(
        `[guest] QEMU pid ${vm?.pid ?? '?'} state ${vm?.state ?? 'gone'}; serial console: ${lines.length ? lines.slice(-2).join(' | ').slice(0, 160) : '(no output yet)'}`,
      );
    }
    // The same owner against a host that boots a different firmware than the owner expects.
    const tampered = path.join(dir, 'host-OVMF.fd');
    const img = fs.readFileSync(fw.path);
    img[0x1000] = (img[0x1000]! ^ 0x01) & 0xff;
    fs.writeFileSync(tampered, img);
    const ref2 = crypto.randomBytes(32).toString('hex');
    await new CrnClient({ url: srv.url }).allocate(token, { ref: ref2, owner: owner.address, firmware: tampered, policy, vcpus: 1, memory_mb: 256 });
    out(`[owner] second VM ${ref2.slice(0, 16)}… on a host that boots a firmware one bit different from the owner's:`);
    try {
      await launchOnCrn({
        client,
        ref: ref2,
        firmware: fs.readFileSync(fw.path),
        policy,
        secret: Buffer.from(password),
        ca: encodeCaChain(ca),
        measurementTimeoutMs: 60_000,
      });
      throw new DemoError('the tampered launch was not refused');
    } catch (e) {
      const { LaunchRefusedError } = await import('../owner/launch.js');
      if (!(e instanceof LaunchRefusedError)) throw e;
      const injected = log.some((l) => l.includes(`${ref2}/confidential/inject_secret`));
      out(`[owner] ${e.message}`);
      out(`[crn] inject_secret requests for that VM: ${injected ? 'SOME (BUG)' : 'none'}`);
      if (injected) throw new DemoError('a secret reached the CRN after a refused check');
    }
    out(`[crn] request log (no secrets): ${log.length} requests`);
    for (const l of log) out(`        ${l.replace(/[0-9a-f]{64}/, (r) => `${r.slice(0, 12)}…`)}`);
    code = 0;
  } finally {
    const t2 = performance.now();
    await srv.close();
    await supervisor.close();
    out(`[teardown] CRN closed and every VM stopped in ${(performance.now() - t2).toFixed(0)} ms`);
    if (!o.env.SEVKIT_DEMO_DIR) fs.rmSync(dir, { recursive: true, force: true });
  }
  out(code === 0 ? 'demo: OK (SIMULATED platform)' : 'demo: FAILED');
  return code;
}
