/**
 * What the CRN service needs from the rest of sevkit, as narrow interfaces, so
 * the HTTP layer can be tested with in-memory fakes and run over the real
 * platform (SevPlatform), the real supervisor (lib/vm) or the simulator.
 */
import type { AlephSevInfo } from '../aleph/messages.js';
import type { AgentAddress } from './forward.js';

/** Raw SEV v1 certificates (0x824 bytes each) as the platform exports them. */
export interface CrnPlatformCerts {
  pdh: Buffer;
  pek: Buffer;
  oca: Buffer;
  cek: Buffer;
}

/** Source of the platform certificate chain (SevPlatform has this method). */
export interface CertificateSource {
  exportCerts(): Promise<CrnPlatformCerts>;
}

/** QEMU's `query-status` reply. */
export interface CrnVmRunStatus {
  status: string;
  running: boolean;
  singlestep?: boolean;
}

/**
 * What the CRN asks a VmLauncher to start: the VM ref, firmware path, policy, vCPUs, memory (MiB), disk, and the
 * owner's session/GODH files.
 */
export interface LaunchSpec {
  ref: string;
  /** Host path of the OVMF image the VM boots (measured by the firmware). */
  firmware: string;
  policy: number;
  vcpus: number;
  memoryMb: number;
  disk?: string;
  /** Files written by the CRN with the owner's upload (base64 text, as QEMU reads them). */
  sessionFile: string;
  godhFile: string;
  /** Directory the launcher may use for sockets and logs of this VM. */
  workDir: string;
}

/**
 * One confidential VM as the CRN drives it. `ready` settles once the VM is
 * paused in the launch-secret state (measurement available) or its launch failed.
 */
export interface CrnVm {
  readonly ready: Promise<void>;
  measurement(): Promise<{ sevInfo: AlephSevInfo; launchMeasure: string }>;
  /** Base64 strings, as QMP `sev-inject-launch-secret` takes them. */
  injectSecret(p: { packetHeader: string; secret: string }): Promise<void>;
  cont(): Promise<void>;
  queryStatus(): Promise<CrnVmRunStatus>;
  stop(): Promise<void>;
  /** Called at most once if the VM goes away on its own (QEMU exit, crash). */
  onExit?(cb: (reason: string) => void): void;
  /**
   * SEV-SNP guests only: where the guest's attestation agent listens, as this host reaches it (the
   * CRN forwards a host port there). Rejects when the launcher has no way to reach it.
   */
  agentAddress?(): Promise<AgentAddress>;
}

/**
 * What the CRN asks a VmLauncher to start for an SEV-SNP instance: started at once (no session, no
 * measurement or secret on the host), optionally with measured direct boot.
 */
export interface SnpLaunchSpec {
  ref: string;
  /** Host path of the OVMF image (`-bios`). */
  firmware: string;
  /** SNP guest policy (bit 17 set; e.g. 0x30000). */
  policy: number;
  vcpus: number;
  memoryMb: number;
  disk?: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  /** The owner's address from the allocation (an agent the launcher starts accepts only its envelopes). */
  owner?: string;
  /** Directory the launcher may use for this VM. */
  workDir: string;
}

/** A VM an earlier CRN process left running, taken over by this one. */
export interface AdoptedVm {
  vm: CrnVm;
  state: 'awaiting-secret' | 'running';
}

/** Starts the CRN's confidential VMs (SupervisorLauncher over lib/vm, or a fake in tests). */
export interface VmLauncher {
  launch(spec: LaunchSpec): Promise<CrnVm>;
  /** SEV-SNP instances: a VM that is running once `ready` settles and has `agentAddress()`. Absent: this CRN has no SNP. */
  launchSnp?(spec: SnpLaunchSpec): Promise<CrnVm>;
  /** Set when `launchSnp` exists but could not serve an SNP VM (e.g. no way to reach guest agents): SNP allocations are refused with it. */
  readonly snpUnavailable?: string | undefined;
  /**
   * On start: the VMs of an earlier process on the same run dir whose QEMU is
   * still running, for the refs in `refs` (the CRN's records); any other
   * leftover is stopped and every dead one's files removed.
   */
  adopt?(refs: string[]): Promise<Map<string, AdoptedVm>>;
  /** On close({ keepVms }): stop managing the VMs but leave them running for the next process's adopt(). */
  detach?(): Promise<void>;
  /** Whether VMs are real QEMU processes (for /status/config and the demo). */
  readonly kind?: string;
  /** The -cpu model VMs get, published so SEV-ES owners can predict the VMSAs (undefined: the host's default). */
  readonly cpu?: string;
}
