/**
 * Launches confidential VMs the way a CRN does: QEMU starts with -S, the
 * firmware does LAUNCH_START/UPDATE/MEASURE, the measurement is read over QMP
 * as soon as QEMU answers, the owner's secret is injected into the firmware's
 * launch-secret area, then the CPUs start.
 *
 *   starting ──► awaiting-secret ──► running ──► stopped
 *       └──────────────┴────────────────┴──────► failed
 *
 * QEMU runs in its own process group so a kill reaches everything it (or the
 * simulator's wrapper) started; the per-VM run directory with the sockets and
 * the owner's blobs is removed whatever way the VM ends.
 *
 * A VM does not depend on the process that started it: QEMU's stdout/stderr
 * go to files in its run dir (no pipe to break), and the run dir holds a record
 * (vm.json: state, pid + start time, QMP socket, measurement), rewritten
 * durably at each state change. `Supervisor.adopt()` in a later process on the
 * same run root takes over every VM whose QEMU is still the process recorded
 * (reconnecting QMP), and removes what dead ones left; `close({ keepVms })`
 * leaves the VMs running for it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { QmpClient } from '../qmp/client.js';
import { QmpDisconnectedError, QmpError, QmpTimeoutError } from '../qmp/errors.js';
import { waitForQmp } from '../qmp/wait.js';
import { buildQemuArgv, type SevAddressBits } from './argv.js';
import { buildSnpQemuArgv, checkSnpGuest, requireSnpQemu, qemuVersion } from './snp.js';
import type { SnpGuestInfo } from '../qmp/sev-info.js';
import { VmError, VmExitedError, VmLaunchError, VmSecretError, VmStateError } from './errors.js';
import { createRunDir, defaultRunRoot, ensureRunRoot, removeRunDir, writePrivateFile } from './rundir.js';
import { settlesWithin } from '../util/async.js';
import { decodeStrictBase64 } from '../util/base64.js';
import { FileTail } from './tail.js';
import { isSameProcess, procIdentity } from './proc.js';
import { acquireRootLock, readVmRecord, writeVmRecord, type RootLock, type VmRecordFile } from './record.js';
import type { VmMeasurement, VmSpec } from './spec.js';

export type { VmMeasurement, VmSevSpec, VmSpec } from './spec.js';

/** A confidential VM's lifecycle state: starting → awaiting-secret → running → stopped, or failed from any of them. */
export type VmState = 'starting' | 'awaiting-secret' | 'running' | 'stopped' | 'failed';

const TRANSITIONS: Record<VmState, VmState[]> = {
  // SNP guests go straight to running: there is no pre-launch step (snp.ts).
  starting: ['awaiting-secret', 'running', 'stopped', 'failed'],
  'awaiting-secret': ['running', 'stopped', 'failed'],
  running: ['stopped', 'failed'],
  stopped: [],
  failed: [],
};

/**
 * Options of a Supervisor: QEMU binary, run directory root, concurrent launches, host CPUID values, and
 * deadlines in ms.
 */
export interface SupervisorOptions {
  /** QEMU binary; default qemu-system-x86_64 from PATH (the CLI passes $SEVKIT_QEMU). */
  qemu?: string;
  /** Where per-VM run directories go; default $TMPDIR/sevkit-vm-<uid>. */
  runRoot?: string;
  /** Launches allowed in `starting` at once; more wait their turn. Default 4. */
  maxConcurrentLaunches?: number;
  /** CPUID JSON file to read cbitpos from instead of the CPU (the simulator's fake host; the CLI passes $SEVKIT_CPUID); default: `env.SEVKIT_CPUID`, else the CPU. */
  cpuidFile?: string;
  /** cbitpos / reduced-phys-bits of this host; default from CPUID 0x8000001F. */
  hostAddressBits?: SevAddressBits | (() => Promise<SevAddressBits>);
  /** Deadline from spawn to measurement (ms). Default 60 s. */
  launchTimeoutMs?: number;
  /** Graceful stop deadline before SIGKILL (ms). Default 10 s. */
  stopTimeoutMs?: number;
  /** Per-QMP-command deadline (ms). Default 30 s. */
  commandTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  accel?: 'kvm' | 'tcg';
  /**
   * Leave the VMs running when this process exits without stopping them (an
   * uncaught error, process.exit): a daemon whose next start adopts them (crn
   * serve) sets this. Default false: they are killed at exit, so a script or a
   * test that forgets stop() leaves nothing behind.
   */
  keepVmsOnExit?: boolean;
}

/**
 * The owner's secret for LAUNCH_SECRET: base64 of the 52-byte packet header and of the encrypted payload, and
 * optionally the guest address.
 */
export interface InjectSecretArgs {
  /** base64 of the 52-byte LAUNCH_SECRET header. */
  packetHeader: string;
  /** base64 of the TEK-encrypted secret. */
  secret: string;
  /** Guest physical address; default: the firmware's launch-secret area. */
  gpa?: number;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** createRunDir's names: the VM name's first 24 characters, '-', mkdtemp's 6. */
const RUN_DIR_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,23}-[A-Za-z0-9]{6}$/;
const SECRET_HEADER_LEN = 52;

/** `s` under the one strict base64 rule (lib/util/base64.ts), else VmSecretError naming `what`. */
export function decodeBase64Strict(s: string, what: string): Buffer {
  const b = decodeStrictBase64(s);
  if (!b) throw new VmSecretError(`${what} is not valid base64`, 'ERR_VM_BASE64');
  return b;
}

class Semaphore {
  private queue: Array<() => void> = [];
  private used = 0;
  constructor(private readonly max: number) {}
  async acquire(): Promise<() => void> {
    if (this.used >= this.max) await new Promise<void>((r) => this.queue.push(r));
    else this.used++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.queue.shift();
      if (next) next();
      else this.used--;
    };
  }
}

/** Every QEMU group we started, killed synchronously if this process exits under us. */
const liveGroups = new Set<number>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pgid of liveGroups) killGroup(pgid);
  });
}

/** SIGKILL to a whole process group (QEMU, or the simulator's wrapper and the real QEMU under it). */
function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    /* group already empty */
  }
}

/** What `Supervisor.adopt()` found in the run root. */
export interface AdoptionResult {
  /** VMs whose QEMU was still running, now managed by this supervisor (awaiting-secret or running). */
  adopted: ConfidentialVm[];
  /** Names of VMs whose QEMU was gone (or mid-launch, and killed); their run dirs were removed. */
  removed: string[];
}

/**
 * Launches and tracks confidential VMs by name, at most maxConcurrentLaunches starting at once. launch() resolves
 * when the measurement is available; after cleaning up it rejects with a VmError (VmLaunchError, VmExitedError with
 * QEMU's stderr, VmStateError when stopped meanwhile) or the QmpError of a QEMU that stayed alive.
 */
export class Supervisor {
  readonly runRoot: string;
  private readonly opts: SupervisorOptions;
  private readonly slots: Semaphore;
  private readonly vms = new Map<string, ConfidentialVm>();
  private adoption: Promise<AdoptionResult> | undefined;
  private lock: RootLock | undefined;

  /** Throws UnsafeDirError when the run root is a symlink, not ours, or group/other-writable. */
  constructor(opts: SupervisorOptions = {}) {
    this.opts = opts;
    this.runRoot = opts.runRoot ?? defaultRunRoot();
    this.slots = new Semaphore(Math.max(1, opts.maxConcurrentLaunches ?? 4));
    ensureRunRoot(this.runRoot);
  }

  /**
   * Takes over the VMs an earlier supervisor on this run root left behind (its
   * process crashed, was SIGKILLed, or closed with keepVms): every record whose
   * QEMU is still the very process recorded (pid and start time) is adopted —
   * QMP reconnected, state, measurement and secret area restored — and every
   * record of a dead QEMU (or of one killed mid-launch, which cannot be
   * resumed) is removed with its run dir. From then on this supervisor holds the
   * root's lock: a second one on the same root is refused (ERR_VM_RUNDIR_BUSY).
   * Runs once; later calls return the first result.
   */
  adopt(): Promise<AdoptionResult> {
    this.adoption ??= this.adoptNow();
    return this.adoption;
  }

  private async adoptNow(): Promise<AdoptionResult> {
    this.lock = acquireRootLock(this.runRoot);
    const result: AdoptionResult = { adopted: [], removed: [] };
    const entries = fs.readdirSync(this.runRoot, { withFileTypes: true });
    await Promise.all(
      entries.map(async (e) => {
        const dir = path.join(this.runRoot, e.name);
        if (!e.isDirectory() || !RUN_DIR_RE.test(e.name)) return;
        const rec = readVmRecord(dir);
        if (!rec || this.vms.has(rec.name)) {
          removeRunDir(dir);
          result.removed.push(rec?.name ?? e.name);
          return;
        }
        const vm = new ConfidentialVm(rec.spec, this.qemu, this.opts, this.runRoot);
        try {
          await vm._adopt(rec, dir);
        } catch {
          result.removed.push(rec.name);
          return;
        }
        this.vms.set(rec.name, vm);
        vm.once('end', () => this.vms.delete(rec.name));
        result.adopted.push(vm);
      }),
    );
    return result;
  }

  /**
   * Stops every VM and releases the run root (lock removed, the root itself if
   * empty and given in the options). With `keepVms`, the VMs are left running instead — QMP closed,
   * records kept — for the next supervisor's adopt().
   */
  async close(opts: { keepVms?: boolean } = {}): Promise<void> {
    if (opts.keepVms) for (const vm of this.list()) vm._detach();
    else await this.stopAll();
    this.lock?.release();
    this.lock = undefined;
    // A root the caller chose is this supervisor's to tidy; the shared default one may be in use by others.
    if (this.opts.runRoot === undefined) return;
    try {
      fs.rmdirSync(this.runRoot);
    } catch {
      /* not empty (kept VMs) or already gone */
    }
  }

  get qemu(): string {
    return this.opts.qemu || 'qemu-system-x86_64';
  }

  /** VMs not yet stopped or failed. */
  list(): ConfidentialVm[] {
    return [...this.vms.values()];
  }

  get(name: string): ConfidentialVm | undefined {
    return this.vms.get(name);
  }

  /**
   * Starts a VM and resolves once its measurement is available (state
   * awaiting-secret), or rejects with a typed error after cleaning up.
   */
  async launch(spec: VmSpec): Promise<ConfidentialVm> {
    if (!NAME_RE.test(spec.name)) throw new VmLaunchError(`VM name ${JSON.stringify(spec.name)} must be 1-64 of [A-Za-z0-9._-]`, 'ERR_VM_SPEC');
    if (this.vms.has(spec.name)) throw new VmLaunchError(`a VM named ${spec.name} is already managed by this supervisor`, 'ERR_VM_SPEC');
    const vm = new ConfidentialVm(spec, this.qemu, this.opts, this.runRoot);
    this.vms.set(spec.name, vm);
    vm.once('end', () => this.vms.delete(spec.name));
    const release = await this.slots.acquire();
    try {
      await vm._start(async () => {
        const h = this.opts.hostAddressBits;
        if (!h) return (await import('./host.js')).hostAddressBits({ cpuidFile: this.opts.cpuidFile || this.opts.env?.SEVKIT_CPUID || undefined });
        return typeof h === 'function' ? h() : h;
      });
    } finally {
      release();
    }
    return vm;
  }

  /** Stops every VM (in parallel). */
  async stopAll(): Promise<void> {
    await Promise.all(this.list().map((vm) => vm.stop().catch(() => undefined)));
  }
}

/**
 * One QEMU guest managed by a Supervisor: its lifecycle state (emits 'state' and 'end'), its measurement, secret
 * injection, resume and stop; operations in the wrong state throw VmStateError.
 */
export class ConfidentialVm extends EventEmitter {
  readonly name: string;
  readonly spec: VmSpec;
  private _state: VmState = 'starting';
  private _runDir: string | undefined;
  private proc: ChildProcess | undefined;
  /** pid, start time and group of QEMU once spawned or adopted (what vm.json records). */
  private ident: { pid: number; startTime: string; pgid: number } | undefined;
  /** Set for a VM taken over from an earlier process: not our child, so its exit is watched through /proc. */
  private adoptedWatch: NodeJS.Timeout | undefined;
  /** Left running for another process (close({ keepVms })): nothing here acts on it any more. */
  private detached = false;
  private qmp: QmpClient | undefined;
  private stderr: FileTail | undefined;
  private stdout: FileTail | undefined;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private exited: Promise<void> | undefined;
  private exitError: VmExitedError | undefined;
  private stopping = false;
  private measured: VmMeasurement | undefined;
  private snpGuest: SnpGuestInfo | undefined;
  private secretArea: { base: number; size: number } | undefined;
  private busy: Promise<unknown> = Promise.resolve();

  constructor(
    spec: VmSpec,
    private readonly qemuBin: string,
    private readonly opts: SupervisorOptions,
    private readonly runRoot: string,
  ) {
    super();
    this.name = spec.name;
    this.spec = spec;
  }

  get state(): VmState {
    return this._state;
  }
  get pid(): number | undefined {
    return this.proc?.pid ?? this.ident?.pid;
  }
  /** True for a VM adopted from an earlier supervisor process. */
  get adopted(): boolean {
    return this.proc === undefined && this.ident !== undefined;
  }
  get runDir(): string | undefined {
    return this._runDir;
  }
  get qmpSocketPath(): string | undefined {
    return this._runDir && path.join(this._runDir, 'qmp.sock');
  }
  /** Last bytes QEMU wrote to stderr / stdout (serial console). */
  get stderrTail(): string {
    return this.stderr?.text() ?? '';
  }
  get consoleTail(): string {
    return this.stdout?.text() ?? '';
  }
  /** The live QMP connection (QEMU serves one client at a time); for commands this class does not wrap. */
  get qmpClient(): QmpClient | undefined {
    return this.qmp;
  }

  private setState(next: VmState): void {
    if (this._state === next) return;
    if (!TRANSITIONS[this._state].includes(next)) throw new VmStateError(`VM ${this.name}: illegal transition ${this._state} → ${next}`);
    const prev = this._state;
    this._state = next;
    if (next === 'awaiting-secret' || next === 'running') this.persist();
    this.emit('state', next, prev);
  }

  /** Rewrites vm.json (durably, 0600) with what a later process needs to adopt this VM. */
  private persist(): void {
    if (!this._runDir || !this.ident || this.detached || this.ended) return;
    const rec: VmRecordFile = {
      version: 1,
      name: this.name,
      state: this._state as VmRecordFile['state'],
      pid: this.ident.pid,
      startTime: this.ident.startTime,
      pgid: this.ident.pgid,
      runDir: this._runDir,
      qmpSocket: path.join(this._runDir, 'qmp.sock'),
      spec: recordableSpec(this.spec),
      ...(this.secretArea ? { secretArea: this.secretArea } : {}),
      ...(this.measured ? { measurement: this.measured } : {}),
    };
    try {
      writeVmRecord(this._runDir, rec);
    } catch {
      // A full disk must not fail the VM; it only cannot be adopted after a crash.
    }
  }

  private requireState(op: string, ...allowed: VmState[]): void {
    if (!allowed.includes(this._state)) {
      throw new VmStateError(`VM ${this.name}: cannot ${op} in state ${this._state} (needs ${allowed.join(' or ')})`);
    }
  }

  /** Serializes operations on one VM (QMP order matters: inject before cont). */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.busy.then(fn, fn);
    this.busy = p.catch(() => undefined);
    return p;
  }

  /** @internal called by Supervisor.launch. */
  async _start(hostInfo: () => Promise<SevAddressBits>): Promise<void> {
    const spec = this.spec;
    const timeoutMs = this.opts.launchTimeoutMs ?? 60_000;
    try {
      this.throwIfStopped();
      if (spec.extraArgs?.some((x) => x === '-daemonize' || x === '--daemonize')) {
        // It would setsid() away from the process group every kill and exit path relies on.
        throw new VmLaunchError(`VM ${spec.name}: -daemonize in extraArgs would take QEMU out of the supervisor's reach`, 'ERR_VM_SPEC');
      }
      if (spec.sev && spec.snp) throw new VmLaunchError(`VM ${spec.name}: give sev or snp, not both`, 'ERR_VM_SPEC');
      if (spec.hostForward && !spec.snp) throw new VmLaunchError(`VM ${spec.name}: hostForward is for SEV-SNP guests only`, 'ERR_VM_SPEC');
      this.secretArea = await readSecretArea(spec.firmware);
      if (spec.snp) requireSnpQemu(await qemuVersion(this.qemuBin, { env: this.opts.env, timeoutMs }), this.qemuBin);
      const dir = createRunDir(this.runRoot, spec.name);
      this._runDir = dir;
      let sev;
      if (spec.sev) {
        const host = await hostInfo();
        const files: { dhCertFile?: string; sessionFile?: string } = {};
        if ((spec.sev.godh === undefined) !== (spec.sev.session === undefined)) {
          throw new VmLaunchError(`VM ${spec.name}: give both the GODH certificate and the session blob, or neither`, 'ERR_VM_SPEC');
        }
        if (spec.sev.godh !== undefined && spec.sev.session !== undefined) {
          files.dhCertFile = writePrivateFile(dir, 'godh.b64', launchBlobText(spec.sev.godh, 'GODH certificate'));
          files.sessionFile = writePrivateFile(dir, 'session.b64', launchBlobText(spec.sev.session, 'session blob'));
        }
        sev = { policy: spec.sev.policy, cbitpos: host.cbitpos, reducedPhysBits: host.reducedPhysBits, kernelHashes: spec.sev.kernelHashes, ...files };
      }
      const alephSockets = spec.alephSockets ?? true;
      const common = {
        qemu: this.qemuBin,
        accel: spec.accel ?? this.opts.accel,
        memMb: spec.memMb ?? 512,
        vcpus: spec.vcpus ?? 1,
        firmware: spec.firmware,
        image: spec.image,
        monitorSocket: alephSockets ? path.join(dir, 'monitor.sock') : undefined,
        qmpSocket: path.join(dir, 'qmp.sock'),
        qgaSocket: alephSockets ? path.join(dir, 'qga.sock') : undefined,
        cpu: spec.cpu,
        tapInterface: spec.tapInterface,
        cloudInitDrive: spec.cloudInitDrive,
        hostVolumes: spec.hostVolumes,
        gpus: spec.gpus,
        name: spec.name,
        kernel: spec.kernel,
        initrd: spec.initrd,
        append: spec.append,
        extra: spec.extraArgs,
      };
      const argv = spec.snp
        ? buildSnpQemuArgv({ ...common, ...(spec.hostForward ? { hostForward: spec.hostForward } : {}), snp: { ...spec.snp, ...(await hostInfo()) } })
        : buildQemuArgv({ ...common, sev });
      this.throwIfStopped();
      await this.spawnQemu(argv);
      const ac = new AbortController();
      // onExit has set exitError by the time `exited` settles: that is the reason, with QEMU's stderr.
      void this.exited!.then(() => ac.abort(this.exitError));
      const timer = setTimeout(() => ac.abort(new QmpTimeoutError(`QEMU for VM ${spec.name} did not answer QMP within ${timeoutMs} ms`)), timeoutMs);
      try {
        this.qmp = await waitForQmp(path.join(dir, 'qmp.sock'), {
          timeoutMs,
          signal: ac.signal,
          commandTimeoutMs: this.opts.commandTimeoutMs,
        });
      } finally {
        clearTimeout(timer);
      }
      if (spec.snp) {
        this.snpGuest = await checkSnpGuest(this.qmp, spec.name, this.qemuBin);
        if (this.stopping) throw new VmStateError(`VM ${spec.name} was stopped during its launch`);
        this.setState('running');
        return;
      }
      const status = await this.qmp.queryStatus();
      if (status.status !== 'prelaunch' && status.status !== 'paused') {
        throw new VmLaunchError(`VM ${spec.name}: QEMU is ${status.status}, expected prelaunch (started with -S)`);
      }
      if (spec.sev) {
        const sevInfo = await this.qmp.querySev();
        if (!sevInfo.enabled) throw new VmLaunchError(`VM ${spec.name}: QEMU reports SEV not enabled for this guest`, 'ERR_VM_NO_SEV');
        const { data } = await this.qmp.querySevLaunchMeasure();
        if (decodeBase64Strict(data, 'launch measure').length !== 48) throw new VmLaunchError(`VM ${spec.name}: launch measure is not 48 bytes`);
        this.measured = { sevInfo, launchMeasure: data };
      }
      // stop() may have come while QEMU was answering: the launch does not succeed under it.
      if (this.stopping) throw new VmStateError(`VM ${spec.name} was stopped during its launch`);
      this.setState('awaiting-secret');
    } catch (e) {
      // Whatever step a stop() cut short (QMP wait, a query, the kill), the caller learns it was the stop.
      const err = this.stopping && !(e instanceof VmStateError) ? new VmStateError(`VM ${spec.name} was stopped during its launch`) : await this.explain(e);
      await this.kill();
      this.fail(err);
      throw err;
    }
  }

  private throwIfStopped(): void {
    if (this.stopping || this.ended) throw new VmStateError(`VM ${this.name} was stopped before QEMU started`);
  }

  /** 'end' once: the VM reached stopped/failed and no process is left. */
  private endEmitted = false;
  private finalize(): void {
    if (this.endEmitted || !this.ended || this.alive) return;
    this.endEmitted = true;
    this.emit('end');
  }

  private spawnQemu(argv: string[]): Promise<void> {
    const dir = this._runDir!;
    this.stdout = new FileTail(path.join(dir, 'console.log'));
    this.stderr = new FileTail(path.join(dir, 'stderr.log'));
    const outFd = fs.openSync(this.stdout.file, 'a', 0o600);
    const errFd = fs.openSync(this.stderr.file, 'a', 0o600);
    return new Promise((resolve, reject) => {
      let child: ChildProcess;
      try {
        child = spawn(argv[0]!, argv.slice(1), {
          // Files, not pipes: QEMU must keep running (and writing) when this process is gone.
          stdio: ['ignore', outFd, errFd],
          ...(this.opts.env ? { env: this.opts.env } : {}),
          detached: true, // own session and process group: a kill reaches the wrapper's real QEMU too, a Ctrl-C on our terminal does not
        });
      } finally {
        fs.closeSync(outFd);
        fs.closeSync(errFd);
      }
      this.proc = child;
      let spawned = false;
      let resolveExited!: () => void;
      this.exited = new Promise<void>((res) => {
        resolveExited = res;
        child.on('close', (code, signal) => {
          this.exitInfo = { code, signal };
          this.onExit(code, signal);
          res();
        });
      });
      // 'close' waits for the stdio pipes, which anything left in QEMU's group still holds: so the group goes
      // as soon as its leader exits, or 'close' (and every wait on it) could hang until the stragglers end.
      child.once('exit', () => {
        if (!child.pid || this.detached) return;
        killGroup(child.pid);
        liveGroups.delete(child.pid);
      });
      child.once('spawn', () => {
        spawned = true;
        if (!this.opts.keepVmsOnExit) {
          installExitHook();
          liveGroups.add(child.pid!);
        }
        const id = procIdentity(child.pid!);
        if (id) {
          this.ident = { pid: child.pid!, startTime: id.startTime, pgid: child.pid! };
          this.persist();
        }
        resolve();
      });
      child.once('error', (err: NodeJS.ErrnoException) => {
        if (spawned) return;
        this.proc = undefined;
        resolveExited();
        reject(new VmLaunchError(`cannot run QEMU ${argv[0]}: ${err.code ?? err.message}`, 'ERR_VM_SPAWN', { cause: err }));
      });
    });
  }

  private exitMessage(code: number | null, signal: NodeJS.Signals | null, during: VmState): VmExitedError {
    const how = signal
      ? `was killed by ${signal}`
      : this.adopted && code === null
        ? 'exited (adopted from an earlier CRN process: no exit status)'
        : `exited with code ${code}`;
    const tail = this.stderr?.lastLines() ?? '';
    return new VmExitedError(`QEMU for VM ${this.name} ${how} while ${during}${tail ? `: ${tail}` : ''}`, code, signal, this.stderr?.text() ?? '');
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.detached) return;
    const during = this._state;
    this.exitError = this.exitMessage(code, signal, during);
    this.qmp?.close();
    this.cleanupFiles();
    if (this.ended) {
      this.finalize();
      return;
    }
    if (this.stopping || (during === 'running' && code === 0)) this.setState('stopped');
    else if (during !== 'starting') this.fail(this.exitError);
    // In `starting`, _start's catch reports the failure.
    this.finalize();
  }

  private fail(err: Error): void {
    if (this.ended) return;
    this.setState('failed');
    this.emit('failed', err);
    this.finalize();
  }

  /** stopped or failed (a getter, so TypeScript does not narrow the state across awaits). */
  get ended(): boolean {
    return this._state === 'stopped' || this._state === 'failed';
  }

  private get alive(): boolean {
    if (this.exitInfo !== undefined) return false;
    if (this.proc) return this.proc.exitCode === null && this.proc.signalCode === null;
    return this.ident !== undefined && isSameProcess(this.ident.pid, this.ident.startTime);
  }

  private cleanupFiles(): void {
    if (this.detached) return;
    this.stderr?.snapshot();
    this.stdout?.snapshot();
    if (this._runDir) removeRunDir(this._runDir);
  }

  /** If QEMU died behind a QMP error, the exit (with stderr) is the better explanation. */
  private async explain(e: unknown): Promise<Error> {
    if (e instanceof VmError) return e; // already precise
    const transport = e instanceof QmpDisconnectedError || e instanceof QmpTimeoutError;
    if (transport && this.exited) await settlesWithin(this.exited, 2000);
    if (this.exitInfo && (transport || !(e instanceof QmpError))) {
      return this.exitError ?? this.exitMessage(this.exitInfo.code, this.exitInfo.signal, this._state);
    }
    return e instanceof Error ? e : new VmError('ERR_VM', String(e));
  }

  private async kill(): Promise<void> {
    const pgid = this.proc?.pid ?? this.ident?.pgid;
    if (this.alive && pgid) killGroup(pgid);
    if (this.adoptedWatch) this.checkAdopted();
    if (this.exited) await this.exited;
    this.qmp?.close();
    this.cleanupFiles();
  }

  /** @internal Supervisor.adopt: take over the QEMU `rec` names if it is still that process. */
  async _adopt(rec: VmRecordFile, dir: string): Promise<void> {
    this._runDir = dir;
    this.stdout = new FileTail(path.join(dir, 'console.log'));
    this.stderr = new FileTail(path.join(dir, 'stderr.log'));
    const id = procIdentity(rec.pid);
    if (!id || id.startTime !== rec.startTime || id.pgid !== rec.pgid) {
      // Gone, or the pid now belongs to another process: nothing of ours runs; remove what it left.
      removeRunDir(dir);
      throw new VmLaunchError(`VM ${rec.name}: QEMU (pid ${rec.pid}) is no longer running`);
    }
    this.ident = { pid: rec.pid, startTime: rec.startTime, pgid: rec.pgid };
    let resolveExited!: () => void;
    this.exited = new Promise<void>((r) => (resolveExited = r));
    this.resolveAdoptedExit = resolveExited;
    if (!this.opts.keepVmsOnExit) {
      installExitHook();
      liveGroups.add(rec.pgid);
    }
    this.adoptedWatch = setInterval(() => this.checkAdopted(), 200);
    this.adoptedWatch.unref();
    this.secretArea = rec.secretArea;
    this.measured = rec.measurement;
    try {
      // A launch cut short by the crash cannot be resumed: that VM is stopped, not adopted.
      if (rec.state === 'starting') throw new VmLaunchError(`VM ${rec.name} was still starting`);
      this.qmp = await waitForQmp(rec.qmpSocket, { timeoutMs: 5000, commandTimeoutMs: this.opts.commandTimeoutMs });
      const status = await this.qmp.queryStatus();
      this._state = rec.state === 'running' || status.running ? 'running' : 'awaiting-secret';
      void this.qmp.waitClosed().then(() => this.checkAdopted());
    } catch (e) {
      this.stopping = true;
      await this.kill();
      this.fail(e instanceof Error ? e : new VmError('ERR_VM', String(e)));
      throw e;
    }
  }

  private resolveAdoptedExit: (() => void) | undefined;

  /** An adopted QEMU is not our child (no 'exit' event): it is gone once /proc no longer shows it. */
  private checkAdopted(): void {
    if (!this.ident || this.exitInfo !== undefined || isSameProcess(this.ident.pid, this.ident.startTime)) return;
    clearInterval(this.adoptedWatch);
    this.adoptedWatch = undefined;
    if (!this.detached) killGroup(this.ident.pgid); // the wrapper's real QEMU dies with it (pdeathsig); anything else in the group too
    liveGroups.delete(this.ident.pgid);
    this.exitInfo = { code: null, signal: null };
    this.onExit(null, null);
    this.resolveAdoptedExit?.();
  }

  /** @internal Supervisor.close({ keepVms }): leave QEMU running, its run dir and record in place. */
  _detach(): void {
    if (this.ended) return;
    this.detached = true;
    clearInterval(this.adoptedWatch);
    this.adoptedWatch = undefined;
    const pgid = this.proc?.pid ?? this.ident?.pgid;
    if (pgid) liveGroups.delete(pgid);
    this.qmp?.close();
    this.proc?.unref();
  }

  // ---- public lifecycle -------------------------------------------------------------------------

  /** `{sevInfo, launchMeasure}` read when QEMU first answered; available from awaiting-secret on. */
  async measurement(): Promise<VmMeasurement> {
    if (this.spec.snp)
      throw new VmStateError(`VM ${this.name} is an SEV-SNP guest: the host has no launch measurement (the guest's attestation report carries it)`);
    this.requireState('read the measurement', 'awaiting-secret', 'running');
    if (this.measured) return this.measured;
    // Plain (non-SEV) VM: ask QEMU, which answers with its own error.
    return this.serial(async () => {
      try {
        const sevInfo = await this.qmp!.querySev();
        const { data } = await this.qmp!.querySevLaunchMeasure();
        return { sevInfo, launchMeasure: data };
      } catch (e) {
        throw await this.explain(e);
      }
    });
  }

  /** For an SNP guest: `query-sev` as checked when QEMU first answered (policy, firmware API, state). */
  get snpInfo(): SnpGuestInfo | undefined {
    return this.snpGuest;
  }

  /** The firmware's launch-secret area (from its OVMF footer table), if it declares one. */
  get firmwareSecretArea(): { base: number; size: number } | undefined {
    return this.secretArea;
  }

  /**
   * Injects the owner's secret (LAUNCH_SECRET) at the firmware's secret area,
   * or at `gpa`, then starts the CPUs. A refused packet leaves the VM waiting.
   */
  injectSecret(args: InjectSecretArgs): Promise<void> {
    return this.serial(async () => {
      if (this.spec.snp) throw new VmStateError(`VM ${this.name} is an SEV-SNP guest: the host cannot inject a secret (it goes to the attested guest)`);
      this.requireState('inject a secret', 'awaiting-secret');
      const header = decodeBase64Strict(args.packetHeader, 'packet header');
      if (header.length !== SECRET_HEADER_LEN)
        throw new VmSecretError(`packet header is ${header.length} bytes, expected ${SECRET_HEADER_LEN}`, 'ERR_VM_SECRET_HEADER');
      const secret = decodeBase64Strict(args.secret, 'secret');
      if (secret.length === 0) throw new VmSecretError('secret is empty', 'ERR_VM_SECRET_SIZE');
      const area = this.secretArea;
      let gpa = args.gpa;
      if (gpa !== undefined && (!Number.isSafeInteger(gpa) || gpa < 0))
        throw new VmSecretError(`gpa must be a non-negative integer, got ${gpa}`, 'ERR_VM_SECRET_GPA');
      if (gpa === undefined) {
        if (!area) {
          throw new VmSecretError(
            `firmware ${this.spec.firmware} declares no launch-secret area (OVMF secret GUID absent or base 0); give the GPA explicitly`,
            'ERR_VM_NO_SECRET_AREA',
          );
        }
        gpa = area.base;
      }
      if (area && gpa >= area.base && gpa < area.base + area.size && gpa + secret.length > area.base + area.size) {
        throw new VmSecretError(
          `secret of ${secret.length} bytes at 0x${gpa.toString(16)} does not fit the firmware's launch-secret area (0x${area.base.toString(16)}, ${area.size} bytes)`,
          'ERR_VM_SECRET_SIZE',
        );
      }
      try {
        await this.qmp!.sevInjectLaunchSecret({ 'packet-header': args.packetHeader.trim(), secret: args.secret.trim(), gpa });
        await this.qmp!.cont();
      } catch (e) {
        throw await this.explain(e);
      }
      this.setState('running');
    });
  }

  /** Starts the CPUs without a secret. */
  resume(): Promise<void> {
    return this.serial(async () => {
      this.requireState('start the CPUs', 'awaiting-secret');
      try {
        await this.qmp!.cont();
      } catch (e) {
        throw await this.explain(e);
      }
      this.setState('running');
    });
  }

  /**
   * Graceful stop: ACPI powerdown for a running guest, then `quit`, then SIGKILL
   * at the deadline. Resolves when QEMU is gone and its files are removed.
   */
  async stop(options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.ended) {
      if (this.alive) await this.kill();
      return;
    }
    this.stopping = true;
    const deadline = Date.now() + (options.timeoutMs ?? this.opts.stopTimeoutMs ?? 10_000);
    const waitExit = (ms: number) => settlesWithin(this.exited ?? Promise.resolve(), ms);
    const qmp = this.qmp;
    if (this.alive && qmp && !qmp.closed) {
      // Only a guest that can hear the ACPI button gets half the deadline to act on it; a paused
      // one, or one whose OS never enabled ACPI (firmware only, no OS yet), goes straight to quit.
      if (this._state === 'running' && (await hearsPowerButton(qmp, Math.min(2000, (deadline - Date.now()) / 4))) !== false) {
        try {
          await qmp.systemPowerdown({ timeoutMs: Math.max(1, (deadline - Date.now()) / 2) });
          await waitExit((deadline - Date.now()) / 2);
        } catch {
          /* fall through to quit */
        }
      }
      if (this.alive && !qmp.closed) {
        try {
          await qmp.quit({ timeoutMs: Math.max(1, deadline - Date.now()) });
          await waitExit(deadline - Date.now());
        } catch {
          /* fall through to kill */
        }
      }
    }
    if (this.alive) await this.kill();
    else if (this.adoptedWatch) this.checkAdopted();
    if (this.exited) await this.exited;
    if (!this.ended) this.setState('stopped');
    this.qmp?.close();
    this.cleanupFiles();
    this.finalize();
  }

  /** Resolves when QEMU has exited and the VM reached stopped or failed. */
  async waitEnded(): Promise<VmState> {
    if (this.exited) await this.exited;
    return this._state;
  }

  /** The error that ended the VM, if it failed or exited. */
  get exitReason(): VmExitedError | undefined {
    return this.exitError;
  }
}

/**
 * Whether the guest would act on an ACPI power-button press: false when QEMU's CPUs
 * are not running (paused by `stop`, a debug stop, a panic) or when no guest OS has
 * enabled the ACPI power button (q35's PM1 block: PWRBTN_EN and SCI_EN; firmware
 * alone leaves the button off), true when one has; undefined when QEMU cannot say
 * (other machines, a QEMU without HMP, the simulator's VM-less QEMU).
 */
async function hearsPowerButton(qmp: QmpClient, timeoutMs: number): Promise<boolean | undefined> {
  const o = { timeoutMs: Math.max(1, timeoutMs) };
  try {
    if (!(await qmp.queryStatus(o)).running) return false;
  } catch {
    return undefined;
  }
  try {
    // The ICH9 LPC bridge (00:1f.0) holds the PM I/O base the firmware programmed.
    const children = await qmp.execute<Array<{ name: string }>>('qom-list', { path: '/machine/q35/pcie.0' }, o);
    for (const c of children.filter((x) => x.name.startsWith('child['))) {
      const at = `/machine/q35/pcie.0/${c.name}`;
      if ((await qmp.execute<string>('qom-get', { path: at, property: 'type' }, o)) !== 'ICH9-LPC') continue;
      const base = await qmp.execute<number>('qom-get', { path: at, property: 'pm_io_base' }, o);
      if (!Number.isInteger(base) || base <= 0 || base > 0xfff0) return false; // no PM block: nothing to press
      const port = async (at: number): Promise<number | undefined> => {
        const out = await qmp.execute<string>('human-monitor-command', { 'command-line': `i/h 0x${at.toString(16)}` }, o);
        const m = /=\s*0x([0-9a-f]{1,4})\s*$/i.exec(out);
        return m ? Number.parseInt(m[1]!, 16) : undefined;
      };
      // QEMU raises the press only when PM1_EN.PWRBTN_EN is set (an OS's ACPI driver sets it;
      // OVMF sets SCI_EN but never enables the button) and the guest sees it only with SCI_EN.
      const [en, cnt] = [await port(base + 2), await port(base + 4)];
      if (en === undefined || cnt === undefined) return undefined;
      return (en & 0x100) !== 0 && (cnt & 1) !== 0;
    }
    return undefined;
  } catch {
    return undefined;
  }
}

/** The spec as vm.json keeps it: the launch blobs are not needed after LAUNCH_START and are left out. */
function recordableSpec(spec: VmSpec): VmSpec {
  const { sev, snp, ...rest } = spec;
  return {
    ...rest,
    ...(sev ? { sev: { policy: sev.policy, ...(sev.kernelHashes !== undefined ? { kernelHashes: sev.kernelHashes } : {}) } } : {}),
    // SNP: the ID block, auth and host data were for LAUNCH_FINISH; a bigint policy is kept as a number (valid ones are < 2^26).
    ...(snp
      ? {
          snp: {
            ...(snp.policy !== undefined ? { policy: Number(snp.policy) } : {}),
            ...(snp.kernelHashes !== undefined ? { kernelHashes: snp.kernelHashes } : {}),
          },
        }
      : {}),
  };
}

/** The GODH / session file content QEMU reads: base64 text (validated) or raw bytes encoded. */
function launchBlobText(v: string | Buffer, what: string): string {
  if (Buffer.isBuffer(v)) return v.toString('base64');
  const text = v.trim();
  if (decodeBase64Strict(text, what).length === 0) throw new VmLaunchError(`${what} is empty`, 'ERR_VM_SPEC');
  return text;
}

/** Secret areas of firmware files already parsed, by path; valid while the file's identity, size and mtime hold. */
const secretAreas = new Map<string, { stamp: string; area: Promise<{ base: number; size: number } | undefined> }>();
const MAX_SECRET_AREAS = 64;

/**
 * The firmware's launch-secret area. Read off the event loop (a 4 MiB image read
 * synchronously stalls every other request a CRN serves) and parsed once per file
 * version: a CRN launches many VMs from the same few images.
 */
async function readSecretArea(firmware: string): Promise<{ base: number; size: number } | undefined> {
  const fail = (e: unknown): never => {
    const code = (e as NodeJS.ErrnoException).code;
    throw new VmLaunchError(`firmware ${firmware}: ${code === 'ENOENT' ? 'no such file' : `cannot read (${code ?? (e as Error).message})`}`, 'ERR_VM_SPEC');
  };
  const st = await fs.promises.stat(firmware).catch(fail);
  const stamp = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
  const hit = secretAreas.get(firmware);
  if (hit?.stamp === stamp) return hit.area;
  const area = (async () => {
    const { parseOvmf, hasOvmfFooterTable } = await import('../firmware/ovmf.js');
    const image = await fs.promises.readFile(firmware).catch(fail);
    if (!hasOvmfFooterTable(image)) return undefined;
    try {
      return parseOvmf(image, firmware).secretArea;
    } catch {
      return undefined;
    }
  })();
  if (secretAreas.size >= MAX_SECRET_AREAS) secretAreas.delete(secretAreas.keys().next().value!);
  secretAreas.set(firmware, { stamp, area });
  // A read that failed is not remembered: the next launch tries again.
  area.catch(() => {
    if (secretAreas.get(firmware)?.area === area) secretAreas.delete(firmware);
  });
  return area;
}
