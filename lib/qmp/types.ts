/** Shapes of the QMP messages and of the SEV-related returns (QEMU qapi/misc-target.json). */

export interface QmpGreeting {
  QMP: {
    version: { qemu: { major: number; minor: number; micro: number }; package: string };
    capabilities: string[];
  };
}

/** An asynchronous QMP event as QEMU sends it (SHUTDOWN, STOP, ...). */
export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

/** `query-status` → StatusInfo. `singlestep` was dropped by later QEMU versions. */
export interface StatusInfo {
  status: string; // RunState: prelaunch, running, paused, shutdown, internal-error, ...
  running: boolean;
  singlestep?: boolean;
}

/** QEMU's SEV guest state names, as `query-sev` reports them. */
export type SevState = 'uninit' | 'launch-update' | 'launch-secret' | 'running' | 'send-update' | 'receive-update';

/**
 * QEMU's `query-sev` answer as it arrives (QAPI SevInfo): flat in 7.2; QEMU ≥ 9.1 adds `sev-type` (a missing one
 * means "sev"). Host-reported and unchecked: parseSevInfo (qmp/sev-info.ts) range-checks it, toAlephSevInfo
 * (aleph/sev-info.ts) relays it in aleph's form.
 */
export interface QmpSevInfo {
  enabled: boolean;
  'api-major': number;
  'api-minor': number;
  'build-id': number;
  policy: number;
  state: SevState | string;
  handle: number;
  'sev-type'?: 'sev' | 'sev-snp' | string;
  'snp-policy'?: number;
}

/** `query-sev-launch-measure` → SevLaunchMeasureInfo: base64 of MEASURE(32) ‖ MNONCE(16). */
export interface SevLaunchMeasureInfo {
  data: string;
}

/** `query-sev-capabilities` → SevCapability. */
export interface SevCapability {
  pdh: string;
  'cert-chain': string;
  'cpu0-id'?: string;
  cbitpos: number;
  'reduced-phys-bits': number;
}

/** `query-sev-attestation-report` → SevAttestationReport. */
export interface SevAttestationReport {
  data: string;
}

/** `sev-inject-launch-secret` arguments, base64 strings as QMP takes them. */
export interface SevInjectLaunchSecretArgs {
  'packet-header': string;
  secret: string;
  gpa?: number;
}
