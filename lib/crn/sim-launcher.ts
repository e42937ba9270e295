/**
 * VM-less guests for a CRN without a process each: a VmLauncher whose guests are
 * the simulated firmware's own (LAUNCH_START, UPDATE of the firmware file, MEASURE,
 * SECRET, FINISH) over one connection to the simulator daemon. Nothing boots and
 * no QEMU (or wrapper) runs: this is what lets one CRN hold an EPYC 9004's 1006
 * guests on a small machine, for scale tests and benchmarks.
 *
 * SIMULATED: the launch crypto is the simulator's; nothing here is hardware-backed.
 * SEV-ES guests are refused (their VMSAs need a vCPU model; use the QEMU wrapper).
 */
import fs from 'node:fs';
import type { AlephSevInfo } from '../aleph/messages.js';
import type { CrnVm, CrnVmRunStatus, LaunchSpec, VmLauncher } from './backend.js';
import { SevkitError } from '../errors.js';
import type { SimCalls } from '../sim/client.js';

/** How long one guest's launch (start, update, measure) may take before it fails. */
const LAUNCH_DEADLINE_MS = 60_000;

/** Launch-secret area bases of firmware files, by path and file version. */
const secretBases = new Map<string, { stamp: string; base: Promise<number> }>();

async function secretBase(file: string): Promise<number> {
  const st = await fs.promises.stat(file);
  const stamp = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
  const hit = secretBases.get(file);
  if (hit?.stamp === stamp) return hit.base;
  const base = (async () => {
    const { parseOvmf, hasOvmfFooterTable } = await import('../firmware/ovmf.js');
    const image = await fs.promises.readFile(file);
    if (!hasOvmfFooterTable(image)) return 0;
    try {
      return parseOvmf(image, file).secretArea?.base ?? 0;
    } catch {
      return 0;
    }
  })();
  if (secretBases.size >= 16) secretBases.delete(secretBases.keys().next().value!);
  secretBases.set(file, { stamp, base });
  base.catch(() => secretBases.delete(file));
  return base;
}

/** A launch the simulated firmware refused, or one that did not finish in time. */
export class SimGuestError extends SevkitError {
  constructor(message: string) {
    super('ERR_SIM_GUEST', message);
  }
}

/** Launches each CRN VM as a firmware-only guest of the simulator (see the file comment). */
export class SimVmLauncher implements VmLauncher {
  readonly kind = 'simulator (VM-less, no QEMU process)';

  /** `calls`: a SimClient connected to the daemon (guests end when it disconnects). */
  constructor(private readonly calls: SimCalls) {}

  async launch(spec: LaunchSpec): Promise<CrnVm> {
    if (spec.policy & 0x4)
      throw new SimGuestError('SEV-ES guests need the QEMU wrapper (their VMSAs depend on a vCPU model): the VM-less launcher runs plain SEV only');
    const [godh, session] = await Promise.all([fs.promises.readFile(spec.godhFile, 'latin1'), fs.promises.readFile(spec.sessionFile, 'latin1')]);
    return new SimGuest(this.calls, spec, Buffer.from(godh.trim(), 'base64'), Buffer.from(session.trim(), 'base64'));
  }
}

class SimGuest implements CrnVm {
  readonly ready: Promise<void>;
  #handle: number | undefined;
  #measure: Buffer | undefined;
  #api = { major: 0, minor: 0, build: 0 };
  #running = false;
  #stopped = false;

  constructor(
    private readonly calls: SimCalls,
    private readonly spec: LaunchSpec,
    godh: Buffer,
    session: Buffer,
  ) {
    this.ready = this.#start(godh, session);
    this.ready.catch(() => undefined);
  }

  async #start(godh: Buffer, session: Buffer): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_r, reject) => {
      timer = setTimeout(() => reject(new SimGuestError(`guest ${this.spec.ref}: no measurement within ${LAUNCH_DEADLINE_MS} ms`)), LAUNCH_DEADLINE_MS);
    });
    try {
      await Promise.race([deadline, this.#launch(godh, session)]);
    } catch (e) {
      await this.stop();
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  async #launch(godh: Buffer, session: Buffer): Promise<void> {
    this.#api = await this.calls.api();
    const handle = await this.calls.launchStart({ policy: this.spec.policy, godh, session });
    this.#handle = handle;
    if (this.#stopped) throw new SimGuestError(`guest ${this.spec.ref} was stopped during its launch`);
    await this.calls.launchUpdateFile(handle, this.spec.firmware);
    this.#measure = await this.calls.launchMeasure(handle);
  }

  async measurement(): Promise<{ sevInfo: AlephSevInfo; launchMeasure: string }> {
    if (!this.#measure || this.#handle === undefined) throw new SimGuestError(`guest ${this.spec.ref} has no measurement yet`);
    return {
      sevInfo: {
        enabled: true,
        api_major: this.#api.major,
        api_minor: this.#api.minor,
        build_id: this.#api.build,
        policy: this.spec.policy,
        state: this.#running ? 'running' : 'launch-secret',
        handle: this.#handle,
      },
      launchMeasure: this.#measure.toString('base64'),
    };
  }

  async injectSecret(p: { packetHeader: string; secret: string }): Promise<void> {
    if (this.#handle === undefined || this.#running) throw new SimGuestError(`guest ${this.spec.ref} is not awaiting a secret`);
    await this.calls.launchSecret(this.#handle, Buffer.from(p.packetHeader, 'base64'), Buffer.from(p.secret, 'base64'), await secretBase(this.spec.firmware));
  }

  async cont(): Promise<void> {
    if (this.#handle === undefined) throw new SimGuestError(`guest ${this.spec.ref} was not launched`);
    if (this.#running) return;
    await this.calls.launchFinish(this.#handle);
    this.#running = true;
  }

  async queryStatus(): Promise<CrnVmRunStatus> {
    return this.#running ? { status: 'running', running: true, singlestep: false } : { status: 'prelaunch', running: false };
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    const h = this.#handle;
    this.#handle = undefined;
    if (h !== undefined) await this.calls.decommission(h).catch(() => undefined);
  }
}
