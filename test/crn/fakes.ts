/** In-memory stand-ins for the platform and the VM supervisor, for CRN HTTP tests. */
import crypto from 'node:crypto';
import type { CertificateSource, CrnVm, LaunchSpec, CrnPlatformCerts, VmLauncher, CrnVmRunStatus } from '../../lib/crn/backend.js';
import type { AlephSevInfo } from '../../lib/aleph/messages.js';

export class FakeCerts implements CertificateSource {
  calls = 0;
  certs: CrnPlatformCerts;
  constructor() {
    this.certs = FakeCerts.random();
  }
  static random(): CrnPlatformCerts {
    return { pdh: crypto.randomBytes(0x824), pek: crypto.randomBytes(0x824), oca: crypto.randomBytes(0x824), cek: crypto.randomBytes(0x824) };
  }
  async exportCerts(): Promise<CrnPlatformCerts> {
    this.calls++;
    await new Promise((r) => setTimeout(r, 5));
    return this.certs;
  }
}

export class FakeVm implements CrnVm {
  readonly ready: Promise<void>;
  injected: { packetHeader: string; secret: string }[] = [];
  continued = false;
  stopped = false;
  rejectInject?: Error;
  #exit?: (r: string) => void;
  #resolve!: () => void;
  #reject!: (e: Error) => void;
  constructor(
    readonly spec: LaunchSpec,
    readonly sevInfo: AlephSevInfo,
    readonly launchMeasure: string,
  ) {
    this.ready = new Promise((res, rej) => {
      this.#resolve = res;
      this.#reject = rej;
    });
    this.ready.catch(() => undefined);
  }
  becomeReady(): void {
    this.#resolve();
  }
  failLaunch(msg: string): void {
    this.#reject(new Error(msg));
  }
  exit(reason: string): void {
    this.#exit?.(reason);
  }
  async measurement(): Promise<{ sevInfo: AlephSevInfo; launchMeasure: string }> {
    return { sevInfo: { ...this.sevInfo, state: this.continued ? 'running' : 'launch-secret' }, launchMeasure: this.launchMeasure };
  }
  async injectSecret(p: { packetHeader: string; secret: string }): Promise<void> {
    if (this.rejectInject) throw this.rejectInject;
    this.injected.push(p);
  }
  async cont(): Promise<void> {
    this.continued = true;
  }
  async queryStatus(): Promise<CrnVmRunStatus> {
    return this.continued ? { status: 'running', running: true, singlestep: false } : { status: 'prelaunch', running: false };
  }
  async stop(): Promise<void> {
    this.stopped = true;
  }
  onExit(cb: (reason: string) => void): void {
    this.#exit = cb;
  }
}

export class FakeLauncher implements VmLauncher {
  readonly kind = 'fake';
  vms: FakeVm[] = [];
  autoReady = true;
  async launch(spec: LaunchSpec): Promise<CrnVm> {
    const vm = new FakeVm(
      spec,
      { enabled: true, api_major: 1, api_minor: 55, build_id: 24, policy: spec.policy, state: 'launch-secret', handle: this.vms.length + 1 },
      crypto.randomBytes(48).toString('base64'),
    );
    this.vms.push(vm);
    if (this.autoReady) setImmediate(() => vm.becomeReady());
    return vm;
  }
}
