/**
 * `qemu-system-x86_64` inside `sevkit sim`: a compatible wrapper that plays
 * QEMU's SEV part against the SIMULATED SEV firmware, then runs the real QEMU
 * without the SEV options (or, without one, a VM-less QMP emulation) and
 * answers the SEV QMP commands itself. Guest memory is never encrypted here:
 * this is a test double for the launch flow, not confidential computing.
 *
 * Environment:
 *   SEVKIT_SIM_SOCKET / SEVKIT_SIM_STATE  the simulator (set by `sevkit sim`)
 *   SEVKIT_REAL_QEMU   path of the real QEMU, or "none" for VM-less mode
 *                      (default /usr/bin/qemu-system-x86_64 when present)
 *   SEVKIT_SIM_ACCEL   tcg (default) | kvm | auto, for the real QEMU
 *   SEVKIT_SIM_QEMU_VERSION  the QEMU version to play, e.g. 9.2.0 (default: the real QEMU's, 7.2
 *                      on Debian): >= 9.1 accepts sev-snp-guest. The VM still runs on the real QEMU;
 *                      -version and the QMP greeting say both.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseQemuArgs, qemuHasSnp, rewriteForRealQemu, QemuArgvError, type ParsedQemu } from './argv.js';
import { InProcessFirmware, fwStatusText, type GuestFirmware } from './firmware.js';
import { SnpGuest } from './snp-guest.js';
import { SevGuest, QemuStartError, qapiArgs, qapiString, querySevCapabilities, sevInfoReply, type HostCpu, type SevDeviceAccess } from './guest.js';
import { QmpReply, QmpServer } from './qmp-server.js';
import { VmlessMachine } from './vmless.js';
import { settlesWithin } from '../../util/async.js';
import type { QmpClient } from '../../qmp/client.js';
import type { QmpGreeting } from '../../qmp/types.js';

const PROG = 'qemu-system-x86_64';
const DEPTH_ENV = 'SEVKIT_QEMU_WRAPPER_DEPTH';
const MARKER = 'sevkit-sim-qemu-wrapper';

function die(msg: string, code = 1): never {
  for (const line of msg.split('\n')) process.stderr.write(`${PROG}: ${line}\n`);
  process.exit(code);
}

/** The real QEMU to run under the wrapper, never the wrapper itself. */
export function findRealQemu(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const configured = env.SEVKIT_REAL_QEMU;
  if (configured === 'none' || configured === '') return undefined;
  const candidate = configured ?? '/usr/bin/qemu-system-x86_64';
  let real: string;
  try {
    real = fs.realpathSync(candidate);
    fs.accessSync(real, fs.constants.X_OK);
  } catch {
    return undefined;
  }
  for (const w of [env.SEVKIT_QEMU, process.argv[1]]) {
    if (!w) continue;
    try {
      if (fs.realpathSync(w) === real) return undefined;
    } catch {
      /* not there */
    }
  }
  // A launcher script carrying our marker is the wrapper again (e.g. installed as /usr/bin/...).
  try {
    const fd = fs.openSync(real, 'r');
    const head = Buffer.alloc(4096);
    const n = fs.readSync(fd, head, 0, head.length, 0);
    fs.closeSync(fd);
    const text = head.subarray(0, n).toString('latin1');
    if (text.includes(MARKER) || text.includes('sim/qemu/main')) return undefined;
  } catch {
    return undefined;
  }
  return real;
}

/** Set by main: what to do when the simulator daemon goes away under a running guest. */
let onDaemonLost: ((e: Error) => void) | undefined;

async function openFirmware(): Promise<GuestFirmware> {
  if (process.env.SEVKIT_SIM_SOCKET) {
    const daemon = await import('./daemon-firmware.js')
      .then((m) => m.openDaemonFirmware(process.env.SEVKIT_SIM_SOCKET!, { tag: process.env.SEVKIT_SIM_TAG, onLost: (e) => onDaemonLost?.(e) }))
      .catch((e) => e as Error);
    if (!(daemon instanceof Error)) return daemon;
    if (!process.env.SEVKIT_SIM_STATE)
      throw new QemuStartError(`sev_kvm_init: cannot reach the simulator at ${process.env.SEVKIT_SIM_SOCKET}: ${daemon.message}`);
  }
  if (process.env.SEVKIT_SIM_STATE) return new InProcessFirmware(process.env.SEVKIT_SIM_STATE, process.env.SEVKIT_SIM_TAG);
  throw new QemuStartError(
    "sev_kvm_init: this qemu-system-x86_64 is sevkit's simulator wrapper; run it inside `sevkit sim` (SEVKIT_SIM_SOCKET / SEVKIT_SIM_STATE are not set)",
  );
}

async function hostCpu(): Promise<HostCpu> {
  const { openCpuid, sevLeaf } = await import('../../platform/cpuid.js');
  const r = await openCpuid({ file: process.env.SEVKIT_CPUID });
  // VMSA RDX for -cpu host: CPUID(1).EAX; on AMD 0x80000001 EAX carries the same signature.
  const sig = (r.get(1)[0] || r.get(0x80000001)[0]) >>> 0;
  return { cbitpos: sevLeaf(r).cbitpos, signature: sig || undefined };
}

function guestDirFor(name: string | undefined): string | undefined {
  const state = process.env.SEVKIT_SIM_STATE;
  if (!state) return undefined;
  let n = (name ?? `pid-${process.pid}`).replace(/[^A-Za-z0-9._-]/g, '_');
  if (n === '.' || n === '..' || n === '') n = `pid-${process.pid}`;
  return path.join(state, 'guests', n);
}

const SIM_GREETING: QmpGreeting = {
  QMP: { version: { qemu: { micro: 0, minor: 2, major: 7 }, package: 'sevkit-sim (SIMULATED SEV, no VM)' }, capabilities: ['oob'] },
};

export async function main(args: string[]): Promise<void> {
  if (Number(process.env[DEPTH_ENV] ?? '0') > 0) die('sevkit sim: the QEMU wrapper would run itself; set SEVKIT_REAL_QEMU to a real QEMU binary or "none"');
  const realQemu = findRealQemu();
  const simVersion = process.env.SEVKIT_SIM_QEMU_VERSION || undefined;
  if (simVersion !== undefined && !/^\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(simVersion))
    die(`sevkit sim: SEVKIT_SIM_QEMU_VERSION must be M.m.u (e.g. 9.2.0), got ${JSON.stringify(simVersion)}`);
  if (simVersion && args.some((a) => a === '-version' || a === '--version')) {
    // Honest about both: the version played (for capability checks) and what really runs the VM.
    process.stdout.write(
      `QEMU emulator version ${simVersion} (sevkit-sim: SIMULATED SEV/SEV-SNP part played as QEMU ${simVersion}; the VM runs on ${realQemu ? `the real QEMU ${realQemu}` : 'no real QEMU (VM-less)'})\n`,
    );
    return;
  }
  if (args.some((a) => a === '-version' || a === '--version' || a === '-help' || a === '--help' || a === '-h')) {
    if (realQemu) {
      const c = spawn(realQemu, args, { stdio: 'inherit' });
      c.on('exit', (code) => process.exit(code ?? 1));
      return;
    }
    process.stdout.write('QEMU emulator version 7.2.0 (sevkit-sim VM-less wrapper)\n');
    return;
  }
  let p: ParsedQemu;
  try {
    p = parseQemuArgs(args, { qemuVersion: simVersion });
  } catch (e) {
    if (e instanceof QemuArgvError) die(e.message);
    throw e;
  }
  if (p.qmpSockets.length === 0 && !realQemu) die('sevkit sim: the VM-less QEMU needs a -qmp unix:PATH socket');

  let fw: GuestFirmware | undefined;
  let host: HostCpu | undefined;
  let guest: SevGuest | SnpGuest | undefined;
  let child: ChildProcess | undefined;
  let upstream: QmpClient | undefined;
  let server: QmpServer | undefined;
  let privateQmp: string | undefined;
  let privateDir: string | undefined;
  let exiting = false;

  const shutdown = async (code: number): Promise<never> => {
    if (!exiting) {
      exiting = true;
      upstream?.close();
      await guest?.decommission();
      fw?.close();
      const closing = server?.close();
      if (closing) await settlesWithin(closing, 1000);
      for (const s of p.qmpSockets) fs.rmSync(s, { force: true });
      if (privateQmp) fs.rmSync(privateQmp, { force: true });
      if (privateDir) fs.rmSync(privateDir, { recursive: true, force: true });
    }
    process.exit(code);
  };

  // The simulated platform went away (its `sevkit sim` stopped): a guest cannot outlive its firmware, and a
  // wrapper left running would be an orphan nobody stops. End like QEMU on a fatal KVM error.
  onDaemonLost = (e) => {
    process.stderr.write(`${PROG}: the simulated SEV platform went away (${e.message}); terminating\n`);
    child?.kill('SIGKILL');
    void shutdown(1);
  };

  try {
    if (p.sev) {
      fw = await openFirmware();
      host = await hostCpu();
      guest = new SevGuest(p.sev, p, fw, host, guestDirFor(p.name), sevDeviceAccess(), qemuHasSnp(simVersion));
      await guest.launch();
      if (!p.startPaused) await guest.finish();
    } else if (p.snp) {
      fw = await openFirmware();
      host = await hostCpu();
      guest = new SnpGuest(p.snp, p, fw, host, guestDirFor(p.name), sevDeviceAccess(), simVersion!);
      await guest.launch();
      // No -S: QEMU runs at once, and SNP_LAUNCH_FINISH comes with the first transition to running.
      if (!p.startPaused) await guest.finish();
    }
  } catch (e) {
    await guest?.decommission();
    fw?.close();
    if (e instanceof QemuStartError && e.raw) {
      process.stderr.write(`${e.message}\n`);
      process.exit(1);
    }
    if (e instanceof QemuStartError) die(e.message);
    die(`sevkit sim: ${(e as Error).message}`);
  }

  let machine: VmlessMachine | undefined;
  let greeting = SIM_GREETING;
  if (simVersion) {
    const [major, minor, micro] = simVersion.split('.').map(Number) as [number, number, number];
    greeting = {
      QMP: {
        ...SIM_GREETING.QMP,
        version: { qemu: { major, minor, micro }, package: `sevkit-sim (SIMULATED SEV/SEV-SNP part played as QEMU ${simVersion}, no VM)` },
      },
    };
  }
  if (realQemu) {
    const accelEnv = process.env.SEVKIT_SIM_ACCEL ?? 'tcg';
    const accel: 'kvm' | 'tcg' = accelEnv === 'kvm' || (accelEnv === 'auto' && kvmUsable()) ? 'kvm' : 'tcg';
    if (!p.qmpSockets[0]) privateDir = fs.mkdtempSync('/tmp/sevkit-simqemu-');
    const sockDir = privateDir ?? path.dirname(p.qmpSockets[0]!);
    privateQmp = path.join(sockDir, `.real-qmp-${process.pid}.sock`);
    const realArgs = rewriteForRealQemu(p, privateQmp, accel);
    // If this wrapper dies (even by SIGKILL), the kernel kills the real QEMU too: no orphaned VMs.
    const setpriv = fs.existsSync('/usr/bin/setpriv') ? '/usr/bin/setpriv' : undefined;
    const [cmd, cmdArgs] = setpriv ? [setpriv, ['--pdeathsig', 'SIGKILL', '--', realQemu, ...realArgs]] : [realQemu, realArgs];
    child = spawn(cmd, cmdArgs, { stdio: 'inherit', env: { ...process.env, [DEPTH_ENV]: '1' } });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child!.on('exit', (code, signal) => r({ code, signal })));
    child.on('error', (e) => {
      // Through shutdown, so the guest is decommissioned in the simulator as on any other exit.
      process.stderr.write(`${PROG}: cannot run the real QEMU ${realQemu}: ${e.message}\n`);
      void shutdown(1);
    });
    for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(sig, () => child!.kill(sig));
    const ac = new AbortController();
    void exited.then(() => ac.abort(new Error('real QEMU exited')));
    const { waitForQmp } = await import('../../qmp/wait.js');
    try {
      upstream = await waitForQmp(privateQmp, { timeoutMs: 60_000, signal: ac.signal, commandTimeoutMs: 0 });
    } catch {
      // No QMP from the real QEMU in time (or it exited): it must not outlive us, and `exited` only settles once it is gone.
      child.kill('SIGKILL');
      const st = await exited;
      await shutdown(st.code ?? 1);
    }
    // Say in the greeting that SEV here is simulated (the version stays the real QEMU's).
    const g = upstream!.greeting;
    greeting = { QMP: { ...g.QMP, version: { ...g.QMP.version, package: `${g.QMP.version.package} + sevkit-sim SEV wrapper (SIMULATED SEV)` } } };
    if (simVersion) {
      const real = g.QMP.version.qemu;
      const [major, minor, micro] = simVersion.split('.').map(Number) as [number, number, number];
      greeting = {
        QMP: {
          ...g.QMP,
          version: {
            qemu: { major, minor, micro },
            package: `${g.QMP.version.package} + sevkit-sim (SIMULATED SEV/SEV-SNP part played as QEMU ${simVersion} over the real QEMU ${real.major}.${real.minor}.${real.micro})`,
          },
        },
      };
    }
    upstream!.onEvent((ev) => server?.forward(ev));
    void exited.then(async (st) => {
      await shutdown(st.code ?? (st.signal ? 128 + (signalNumber(st.signal) ?? 1) : 1));
    });
  } else {
    machine = new VmlessMachine(
      p.startPaused,
      () => server,
      (code) => void shutdown(code),
      p.name,
    );
    for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
      process.on(sig, () => {
        process.stderr.write(`${PROG}: terminating on signal ${signalNumber(sig)}\n`);
        server?.broadcast('SHUTDOWN', { guest: false, reason: 'host-signal' });
        void shutdown(0);
      });
    }
  }

  const { QmpCommandError } = await import('../../qmp/errors.js');
  server = new QmpServer(greeting, async (command, cmdArgs) => {
    if (guest) {
      const r = await guest.qmp(command, cmdArgs);
      if (r !== undefined) return r;
      if (command === 'cont') {
        try {
          await guest.finish();
        } catch (e) {
          // QEMU exits when LAUNCH_FINISH fails at the first transition to running.
          const fwStatus = (e as { fwStatus?: number }).fwStatus;
          if (e instanceof QemuStartError) process.stderr.write(`${PROG}: ${e.message}\n`);
          else process.stderr.write(`${PROG}: sev_launch_finish: LAUNCH_FINISH ret=1 fw_error=${fwStatus ?? -1} '${fwStatusText(fwStatus ?? -1)}'\n`);
          child?.kill('SIGKILL');
          void shutdown(1);
          return new Promise<never>(() => undefined);
        }
      }
    } else if (command === 'query-sev-capabilities' && process.env.SEVKIT_SIM_STATE && !realQemu) {
      qapiArgs(cmdArgs);
      // Works without a sev-guest object on real QEMU+KVM too.
      fw ??= await openFirmware();
      host ??= await hostCpu();
      return querySevCapabilities(fw, host);
    } else if (command === 'query-sev' && qemuHasSnp(simVersion)) {
      // No SEV guest on the QEMU played: its zeroed SevInfo (a real 7.2 underneath would leave out sev-type).
      qapiArgs(cmdArgs);
      return sevInfoReply({ enabled: false, api: { major: 0, minor: 0, build: 0 }, state: 'uninit', policy: 0, handle: 0 }, true);
    }
    if (machine) {
      if (command === 'query-sev' || command === 'query-sev-launch-measure') qapiArgs(cmdArgs);
      if (command === 'sev-inject-launch-secret')
        qapiArgs(cmdArgs, [
          { name: 'packet-header', type: 'str' },
          { name: 'secret', type: 'str' },
          { name: 'gpa', type: 'uint64', optional: true },
        ]);
      if (command === 'query-sev') return sevInfoReply({ enabled: false, api: { major: 0, minor: 0, build: 0 }, state: 'uninit', policy: 0, handle: 0 }, false);
      if (command === 'query-sev-launch-measure') throw new QmpReply('GenericError', 'SEV launch measurement is not available');
      if (command === 'sev-inject-launch-secret') throw new QmpReply('GenericError', 'SEV not enabled for guest');
      if (command === 'query-sev-attestation-report') {
        qapiString(cmdArgs, 'mnonce'); // QAPI checks the arguments before sev.c looks for a guest
        throw new QmpReply('GenericError', 'SEV is not enabled');
      }
      return machine.handle(command, cmdArgs);
    }
    try {
      return await upstream!.execute(command, cmdArgs, { timeoutMs: 0 });
    } catch (e) {
      if (e instanceof QmpCommandError) throw new QmpReply(e.errorClass, e.desc);
      // QEMU may close its socket right after accepting quit; the quit itself worked.
      if (command === 'quit') return {};
      throw new QmpReply('GenericError', (e as Error).message);
    }
  });
  for (const s of p.qmpSockets) await server.listen(s);
}

/** Whether an open() of the sev-device here reaches the simulator (the shim is preloaded and has a socket). */
function sevDeviceAccess(): SevDeviceAccess {
  const simulatedPath = process.env.SEVKIT_SIM_DEVICE || '/dev/sev';
  const viaShim = !!process.env.SEVKIT_SIM_SOCKET && (process.env.LD_PRELOAD ?? '').includes('sevkit_sim_preload');
  return { simulatedPath, viaShim };
}

function kvmUsable(): boolean {
  try {
    fs.accessSync('/dev/kvm', fs.constants.R_OK | fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

function signalNumber(sig: NodeJS.Signals): number | undefined {
  return (os.constants.signals as Record<string, number>)[sig];
}

const isEntry = (() => {
  try {
    return process.argv[1] !== undefined && fs.realpathSync(process.argv[1]) === fs.realpathSync(new URL(import.meta.url).pathname);
  } catch {
    return false;
  }
})();
if (isEntry) {
  main(process.argv.slice(2)).catch((e) => die(`sevkit sim: ${(e as Error).message}`));
}
