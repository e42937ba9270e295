/**
 * What a VM is launched from (VmSpec, its SEV part) and what its launch measured (VmMeasurement): the
 * supervisor takes and returns them, and `record.ts` keeps them in vm.json.
 */
import type { QmpSevInfo } from '../qmp/types.js';
import type { VmSnpSpec } from './snp.js';

/**
 * The SEV part of a VmSpec: the guest policy, the owner's GODH certificate and session blob, and measured direct
 * boot.
 */
export interface VmSevSpec {
  /** Guest policy; bit 2 (0x4) makes an SEV-ES guest. */
  policy: number;
  /** Guest owner's DH certificate: base64 text as sevctl writes it (string) or raw bytes (Buffer). */
  godh?: string | Buffer;
  /** Launch session blob: base64 text (string) or raw bytes (Buffer). */
  session?: string | Buffer;
  kernelHashes?: boolean;
}

/**
 * What to launch: name, firmware, memory (MiB), vCPUs, SEV parameters (null for a plain VM), disks, devices and
 * direct boot.
 */
export interface VmSpec {
  /** Letters, digits, '.', '_', '-'; also QEMU's -name (the simulator files secrets under it). */
  name: string;
  /** Firmware image (OVMF), attached read-only as pflash unit 0 and measured. */
  firmware: string;
  memMb?: number;
  vcpus?: number;
  /** null/undefined: a plain VM (no sev-guest object), for hosts and tests without SEV. */
  sev?: VmSevSpec | null;
  /** An SEV-SNP guest (QEMU >= 9.1; exclusive with `sev`): started at once, no measurement or secret on the host. */
  snp?: VmSnpSpec | null;
  image?: { path: string; format?: string };
  cpu?: string;
  accel?: 'kvm' | 'tcg';
  tapInterface?: string;
  /**
   * SEV-SNP guests on a host without a tap network: QEMU user networking with one TCP forward,
   * 127.0.0.1:hostPort on the host to guestPort in the guest (its attestation agent). Kept in vm.json,
   * so a later process adopting the VM finds the port.
   */
  hostForward?: { hostPort: number; guestPort: number };
  cloudInitDrive?: string;
  hostVolumes?: Array<{ path: string; readOnly: boolean }>;
  gpus?: Array<{ pciHost: string; xVga?: boolean }>;
  kernel?: string;
  initrd?: string;
  append?: string;
  /** Add aleph's monitor socket and guest-agent channel (default true). */
  alephSockets?: boolean;
  extraArgs?: string[];
}

/** What QEMU reported once the firmware measured the guest: query-sev and the base64 48-byte launch measurement. */
export interface VmMeasurement {
  sevInfo: QmpSevInfo;
  /** base64 of MEASURE(32) ‖ MNONCE(16), as query-sev-launch-measure returns it. */
  launchMeasure: string;
}
