/**
 * Adapters from sevkit's host modules to the CRN's narrow interfaces:
 * the QEMU supervisor (lib/vm) as a VmLauncher, and the platform (lib/platform
 * + lib/certs) as the certificate source, with sevctl's CEK handling.
 */
import fs from 'node:fs';
import net from 'node:net';
import type { AlephSevInfo } from '../aleph/messages.js';
import { toAlephSevInfo } from '../aleph/sev-info.js';
import type { CaChain, KdsOptions } from '../certs/index.js';
import type { AdoptedVm, CertificateSource, CrnPlatformCerts, CrnVm, CrnVmRunStatus, LaunchSpec, SnpLaunchSpec, VmLauncher } from './backend.js';
import type { ConfidentialVm, Supervisor } from '../vm/index.js';
import type { AgentAddress } from './forward.js';
import { SevkitError } from '../errors.js';
import { SNP_AGENT_PORT } from './service.js';

/** A guest agent's address, and how to let go of it when the VM ends or is let go of (e.g. stop the agent process a locator started). */
export interface SnpAgentEndpoint extends AgentAddress {
  close?(): Promise<void>;
}

/**
 * Where an SNP VM's attestation agent listens: on a host with guest networking, the VM's address
 * and port 8443; on the simulator, where its guest side runs the agent for a VM-less guest (it may
 * start it here). Called once per VM start or adoption.
 */
export type SnpAgentLocator = (vm: SnpAgentVm) => Promise<SnpAgentEndpoint>;

/** What a locator is told about the SNP VM whose agent it finds. */
export interface SnpAgentVm {
  ref: string;
  /** QEMU's pid. */
  pid: number | undefined;
  /** The VM's run dir (private, removed when the VM ends). */
  runDir: string | undefined;
  /** True for a VM an earlier CRN process started. */
  adopted: boolean;
  /** The owner's address from the allocation (undefined for an adopted VM: the locator keeps what it needs). */
  owner?: string;
  /** The host port QEMU forwards to the guest's agent (`snpHostForward`), as recorded in the VM's spec. */
  hostPort?: number;
}

/** The locator of `snpHostForward` guests: QEMU's user networking forwards 127.0.0.1:hostPort to the guest agent. */
export const hostForwardAgentLocator: SnpAgentLocator = ({ ref, hostPort }) =>
  hostPort
    ? Promise.resolve({ host: '127.0.0.1', port: hostPort })
    : Promise.reject(new NoAgentLocatorError(ref, 'its QEMU was started without a host forward'));

/** The launcher was not told how to reach SNP guests' agents. */
export class NoAgentLocatorError extends SevkitError {
  constructor(ref: string, why = 'this CRN has no way to reach SEV-SNP guest agents (SupervisorLauncher snpAgent or snpHostForward option)') {
    super('ERR_CRN_NO_AGENT', `VM ${ref}: ${why}`);
  }
}

/** Options of a SupervisorLauncher. */
export interface SupervisorLauncherOptions {
  /** What /status/config calls these VMs (default 'qemu'). */
  kind?: string;
  /** QEMU -cpu for every VM. */
  cpu?: string;
  accel?: 'kvm' | 'tcg';
  /** Format of SEV VMs' disks (default qcow2). */
  diskFormat?: string;
  /** Where each SNP VM's guest agent listens (e.g. agentProcessLocator on the simulator). */
  snpAgent?: SnpAgentLocator;
  /**
   * SNP guests get QEMU user networking forwarding a free 127.0.0.1 port (chosen here, kept in the VM's
   * spec for adoption) to the guest's port 8443; without `snpAgent`, the agent is located there.
   */
  snpHostForward?: boolean;
}

/** A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, read, closed). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Launches each VM as a QEMU process (real QEMU, or the simulator's wrapper on PATH). */
export class SupervisorLauncher implements VmLauncher {
  readonly kind: string;
  readonly cpu?: string;
  constructor(
    readonly supervisor: Supervisor,
    readonly opts: SupervisorLauncherOptions = {},
  ) {
    this.kind = opts.kind ?? 'qemu';
    if (opts.cpu) this.cpu = opts.cpu;
  }

  /** Why SNP allocations are refused: neither a locator nor host forwarding was given, so no agent could be reached. */
  get snpUnavailable(): string | undefined {
    return this.opts.snpAgent || this.opts.snpHostForward
      ? undefined
      : 'This CRN cannot reach SEV-SNP guest agents (it was started without a way to), so it launches no SNP instances';
  }

  async launch(spec: LaunchSpec): Promise<CrnVm> {
    // Off the event loop: a CRN serving many owners must not stall on a disk read per launch.
    const [godh, session] = (await Promise.all([fs.promises.readFile(spec.godhFile, 'latin1'), fs.promises.readFile(spec.sessionFile, 'latin1')])).map((t) =>
      t.trim(),
    ) as [string, string];
    const started = this.supervisor.launch({
      name: spec.ref,
      firmware: spec.firmware,
      memMb: spec.memoryMb,
      vcpus: spec.vcpus,
      sev: { policy: spec.policy, godh, session },
      ...(spec.disk ? { image: { path: spec.disk, format: this.opts.diskFormat ?? 'qcow2' } } : {}),
      ...(this.opts.cpu ? { cpu: this.opts.cpu } : {}),
      ...(this.opts.accel ? { accel: this.opts.accel } : {}),
    });
    started.catch(() => undefined);
    return new SupervisedVm(started, () => this.supervisor.get(spec.ref));
  }

  /** An SEV-SNP guest (VmSpec.snp): running at once, no pre-launch step; its agent found through `snpAgent` (or its `snpHostForward` port). */
  async launchSnp(spec: SnpLaunchSpec): Promise<CrnVm> {
    // Chosen free now, bound by QEMU at start (a port taken in between fails the launch with QEMU's line).
    const hostPort = this.opts.snpHostForward ? await freeLoopbackPort() : undefined;
    const started = this.supervisor.launch({
      name: spec.ref,
      firmware: spec.firmware,
      memMb: spec.memoryMb,
      vcpus: spec.vcpus,
      snp: { policy: spec.policy, ...(spec.kernel ? { kernelHashes: true } : {}) },
      ...(spec.kernel ? { kernel: spec.kernel } : {}),
      ...(spec.initrd ? { initrd: spec.initrd } : {}),
      ...(spec.append !== undefined ? { append: spec.append } : {}),
      // aleph attaches an SNP rootfs read-only raw (dm-verity protects it).
      ...(spec.disk ? { image: { path: spec.disk, format: 'raw' } } : {}),
      ...(this.opts.cpu ? { cpu: this.opts.cpu } : {}),
      ...(this.opts.accel ? { accel: this.opts.accel } : {}),
      ...(hostPort ? { hostForward: { hostPort, guestPort: SNP_AGENT_PORT } } : {}),
    });
    started.catch(() => undefined);
    return this.#track(new SupervisedVm(started, () => this.supervisor.get(spec.ref), this.#locator(spec.ref, false, spec.owner)));
  }

  /** SNP VMs whose agent endpoints this process holds (released on detach: the next process finds them again). */
  readonly #snpVms = new Set<SupervisedVm>();

  #track(vm: SupervisedVm): SupervisedVm {
    this.#snpVms.add(vm);
    vm.onRelease = () => this.#snpVms.delete(vm);
    return vm;
  }

  #locator(ref: string, adopted: boolean, owner?: string): (vm: ConfidentialVm) => Promise<SnpAgentEndpoint> {
    return (vm) => {
      const locate = this.opts.snpAgent ?? (this.opts.snpHostForward ? hostForwardAgentLocator : undefined);
      if (!locate) return Promise.reject(new NoAgentLocatorError(ref));
      const hostPort = vm.spec.hostForward?.hostPort;
      return locate({ ref, pid: vm.pid, runDir: vm.runDir, adopted, ...(owner ? { owner } : {}), ...(hostPort ? { hostPort } : {}) });
    };
  }

  async adopt(refs: string[]): Promise<Map<string, AdoptedVm>> {
    const { adopted } = await this.supervisor.adopt();
    const wanted = new Set(refs);
    const out = new Map<string, AdoptedVm>();
    await Promise.all(
      adopted.map(async (vm) => {
        // A QEMU the CRN has no record of (its record was lost) has no owner to serve: stop it.
        if (!wanted.has(vm.name) || (vm.state !== 'awaiting-secret' && vm.state !== 'running')) {
          await vm.stop().catch(() => undefined);
          return;
        }
        const agent = vm.spec.snp ? this.#locator(vm.name, true) : undefined;
        const svm = new SupervisedVm(Promise.resolve(vm), () => this.supervisor.get(vm.name), agent);
        out.set(vm.name, { vm: agent ? this.#track(svm) : svm, state: vm.state });
      }),
    );
    return out;
  }

  async detach(): Promise<void> {
    await Promise.all([...this.#snpVms].map((v) => v.releaseAgent()));
    await this.supervisor.close({ keepVms: true });
  }
}

class SupervisedVm implements CrnVm {
  readonly ready: Promise<void>;
  #exitCb?: (reason: string) => void;
  #vm?: ConfidentialVm;
  #agent?: Promise<SnpAgentEndpoint>;
  #released = false;
  readonly agentAddress?: () => Promise<AgentAddress>;

  constructor(
    private readonly started: Promise<ConfidentialVm>,
    private readonly lookup: () => ConfidentialVm | undefined,
    locate?: (vm: ConfidentialVm) => Promise<SnpAgentEndpoint>,
  ) {
    this.ready = started.then((vm) => {
      this.#vm = vm;
      vm.once('end', () => {
        void this.releaseAgent();
        const r = vm.exitReason?.message ?? `VM ${vm.state}`;
        this.#exitCb?.(r);
      });
    });
    this.ready.catch(() => undefined);
    if (locate) {
      this.agentAddress = async () => {
        const vm = await this.#get();
        // Never a new agent for a VM that ended or was let go of: nothing would stop it.
        if (this.#released) throw new NoAgentLocatorError(vm.name, `the VM is ${vm.state === 'running' ? 'no longer managed here' : vm.state}`);
        this.#agent ??= locate(vm);
        const a = await this.#agent;
        return { host: a.host, port: a.port };
      };
    }
  }

  /** Called once the VM is gone or let go of. */
  onRelease?: () => void;

  /** Lets go of the agent endpoint (the simulator's in-process agent stops); errors are the locator's to log. */
  async releaseAgent(): Promise<void> {
    this.#released = true;
    const a = this.#agent;
    this.#agent = undefined;
    this.onRelease?.();
    if (a) await a.then((e) => e.close?.()).catch(() => undefined);
  }

  async #get(): Promise<ConfidentialVm> {
    return this.#vm ?? (await this.started);
  }

  async measurement(): Promise<{ sevInfo: AlephSevInfo; launchMeasure: string }> {
    const m = await (await this.#get()).measurement();
    return { sevInfo: toAlephSevInfo(m.sevInfo), launchMeasure: m.launchMeasure };
  }

  async injectSecret(p: { packetHeader: string; secret: string }): Promise<void> {
    // ConfidentialVm injects and resumes in one serialized step.
    await (await this.#get()).injectSecret({ packetHeader: p.packetHeader, secret: p.secret });
  }

  async cont(): Promise<void> {
    const vm = await this.#get();
    if (vm.state === 'awaiting-secret') await vm.resume();
  }

  async queryStatus(): Promise<CrnVmRunStatus> {
    const vm = await this.#get();
    const q = vm.qmpClient;
    if (q && !q.closed) {
      const s = await q.queryStatus();
      return { status: s.status, running: s.running, ...(s.singlestep !== undefined ? { singlestep: s.singlestep } : {}) };
    }
    return { status: vm.state, running: vm.state === 'running' };
  }

  async stop(): Promise<void> {
    const vm = this.#vm ?? this.lookup();
    try {
      if (vm) await vm.stop();
      else await this.started.then((v) => v.stop()).catch(() => undefined);
    } finally {
      await this.releaseAgent();
    }
  }

  onExit(cb: (reason: string) => void): void {
    this.#exitCb = cb;
  }
}

/**
 * The platform's chain as `sevctl export` builds it: PDH, PEK, OCA from the
 * firmware, and a CEK that an ASK signed (the firmware's when it already is,
 * else AMD KDS's for this chip). Needs lib/platform and lib/certs.
 */
export async function platformCertificateSource(
  opts: { device?: string | undefined; testCa?: CaChain | undefined; kds?: KdsOptions } = {},
): Promise<CertificateSource> {
  const { SevPlatform } = await import('../platform/index.js');
  const { platformSevChain, encodeSevCert } = await import('../certs/index.js');
  const platform = new SevPlatform(opts.device ? { device: opts.device } : {});
  const chainOpts = { ...(opts.testCa ? { testCa: opts.testCa } : {}), ...(opts.kds ? { kds: opts.kds } : {}) };
  return {
    async exportCerts(): Promise<CrnPlatformCerts> {
      const { sev } = await platformSevChain(platform, chainOpts);
      return { pdh: encodeSevCert(sev.pdh), pek: encodeSevCert(sev.pek), oca: encodeSevCert(sev.oca), cek: encodeSevCert(sev.cek) };
    },
  };
}
