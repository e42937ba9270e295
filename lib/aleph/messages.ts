/**
 * aleph's confidential-VM wire messages, shared by both ends: the CRN writes
 * them (lib/crn) and the guest owner reads them (lib/owner). Field names are
 * aleph's snake_case JSON (aleph-vm VmSevInfo, aleph-sdk SEVMeasurement).
 */

/** QEMU's `query-sev` in aleph's snake_case JSON form (aleph-vm VmSevInfo). Values are the host's word: check them (lib/launch checkHostReport) before use. */
export interface AlephSevInfo {
  enabled: boolean;
  /** SEV API major version (one byte on the wire of the measurement MAC). */
  api_major: number;
  /** SEV API minor version (one byte). */
  api_minor: number;
  /** Firmware build id (one byte). */
  build_id: number;
  /** Guest policy (u32). */
  policy: number;
  /** QEMU's SEV state name, e.g. "launch-secret". */
  state: string;
  /** Firmware guest handle. */
  handle: number;
}

/** The answer of `GET /control/machine/{ref}/confidential/measurement` (aleph-sdk SEVMeasurement). */
export interface SevMeasurementResponse {
  sev_info: AlephSevInfo;
  /** base64 of the 48-byte launch measurement (32-byte MAC || 16-byte mnonce). */
  launch_measure: string;
}
