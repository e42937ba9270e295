/**
 * The simulated firmware's refusal of a guest command, in its own module so that the guest commands
 * (guests.ts) and the firmware-file reader they use (firmware-file.ts) share it without a cycle.
 */
import { SevkitError } from '../errors.js';
import { Ret } from './uapi.js';

/** The SEV_RET_* name of a status code (`0x..` for one the SEV API does not name). */
export function retName(code: number): string {
  for (const [k, v] of Object.entries(Ret)) if (v === code) return k;
  return `0x${code.toString(16)}`;
}

/** A guest command the simulated firmware refused (fwStatus = SEV_RET_*). */
export class SimFirmwareError extends SevkitError {
  readonly fwStatus: number;
  readonly fwStatusName: string;
  constructor(fwStatus: number, message: string) {
    super('ERR_SIM_FIRMWARE', message);
    this.fwStatus = fwStatus;
    this.fwStatusName = retName(fwStatus);
  }
}
