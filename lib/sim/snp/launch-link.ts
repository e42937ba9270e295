/**
 * The simulated guest side of an SNP VM the QEMU wrapper launched: what the wrapper recorded at
 * SNP_LAUNCH_FINISH (`guests/<vm>/snp-launch.json`: measurement, policy, host data, ID fields and
 * key digests) is what the simulated firmware signs into that guest's reports.
 *
 * Two ways to get there. Per guest (several SNP VMs at once): a process started with
 * `SEVKIT_SIM_GUEST=<vm>`, or one that opens `/dev/sev-guest/<vm>` (simGuestDevice), is served
 * from that VM's record, and from nothing else (guest.ts `config(vm)`). One at a time (the older
 * way): linkSnpLaunch copies a VM's record into `snp-guest.json`, the identity of every process
 * that names no guest.
 */
import fs from 'node:fs';
import path from 'node:path';
import { SevkitError } from '../../errors.js';
import { SNP_LAUNCH_RECORD, type SnpLaunchRecord } from '../qemu/snp-guest.js';
import { readSnpGuestConfig, SnpGuestConfigError, writeSnpGuestConfig, type SnpGuestConfig } from './config.js';

const HEX = (n: number) => new RegExp(`^[0-9a-f]{${2 * n}}$`);

/**
 * The environment variable that puts a process inside a simulated SNP guest: `SEVKIT_SIM_GUEST=<vm name>`
 * (read once by the shim at load; its /dev/sev-guest reports are that VM's).
 */
export const SIM_GUEST_ENV = 'SEVKIT_SIM_GUEST';

/** Longest simulator guest name (the shim sends at most this many bytes of $SEVKIT_SIM_GUEST). */
export const SIM_GUEST_NAME_MAX = 128;

/** Whether `vm` can name a simulator guest (`guests/<vm>`): 1..128 of [A-Za-z0-9._-], not starting with a dot. */
export function isSimGuestName(vm: string): boolean {
  return vm.length <= SIM_GUEST_NAME_MAX && /^[A-Za-z0-9._-]+$/.test(vm) && !vm.startsWith('.');
}

/** A named guest that has no SNP launch on this simulator (bad name, never launched, or stopped). */
export class SimGuestUnknownError extends SevkitError {
  constructor(
    /** the name asked for (cut to 80 characters) */
    readonly vm: string,
    message: string,
  ) {
    super('ERR_SIM_SNP_GUEST', message);
  }
}

/**
 * Reads and checks `<stateDir>/guests/<vm>/snp-launch.json` (hex lengths, policy, key digests).
 * Throws SimGuestUnknownError when the name is not a guest name or the VM has no record,
 * SnpGuestConfigError when the record is not one the wrapper writes.
 */
export function readSnpLaunchRecord(stateDir: string, vm: string): SnpLaunchRecord {
  const shown = JSON.stringify(vm.slice(0, 80));
  if (!isSimGuestName(vm)) throw new SimGuestUnknownError(vm.slice(0, 80), `VM name ${shown} is not a simulator guest name`);
  const file = path.join(stateDir, 'guests', vm, SNP_LAUNCH_RECORD);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      throw new SimGuestUnknownError(vm, `${file}: no SNP launch recorded for VM ${shown} (not launched by the wrapper playing QEMU >= 9.1, or stopped)`);
    throw new SnpGuestConfigError(`${file}: ${(e as Error).message}`);
  }
  let r: SnpLaunchRecord;
  try {
    r = JSON.parse(text) as SnpLaunchRecord;
  } catch (e) {
    throw new SnpGuestConfigError(`${file}: ${(e as Error).message}`);
  }
  const ok =
    r &&
    typeof r === 'object' &&
    HEX(48).test(String(r.measurement)) &&
    HEX(32).test(String(r.hostData)) &&
    HEX(16).test(String(r.familyId)) &&
    HEX(16).test(String(r.imageId)) &&
    HEX(48).test(String(r.idKeyDigest)) &&
    HEX(48).test(String(r.authorKeyDigest)) &&
    typeof r.authorKeyEn === 'boolean' &&
    /^0x[0-9a-f]{1,16}$/.test(String(r.policy)) &&
    Number.isInteger(r.guestSvn) &&
    r.guestSvn >= 0 &&
    r.guestSvn <= 0xffffffff;
  if (!ok) throw new SnpGuestConfigError(`${file}: not an SNP launch record`);
  return r;
}

/** The launch values of a record, as snp-guest.json fields (what the firmware fixed at LAUNCH_FINISH). */
export function launchConfigOf(r: SnpLaunchRecord): SnpGuestConfig {
  return {
    measurement: r.measurement,
    policy: r.policy,
    hostData: r.hostData,
    familyId: r.familyId,
    imageId: r.imageId,
    guestSvn: r.guestSvn,
    idKeyDigest: r.idKeyDigest,
    authorKeyDigest: r.authorKeyDigest,
    authorKeyEn: r.authorKeyEn,
  };
}

/**
 * Reads `<stateDir>/guests/<vm>/snp-launch.json` (checked) and writes its launch values into
 * `<stateDir>/snp-guest.json`, keeping the configured product and keys, so processes that name no
 * guest report this launch (the last VM linked wins). Returns the record. Throws
 * SimGuestUnknownError / SnpGuestConfigError as readSnpLaunchRecord.
 */
export function linkSnpLaunch(stateDir: string, vm: string): SnpLaunchRecord {
  const r = readSnpLaunchRecord(stateDir, vm);
  writeSnpGuestConfig(stateDir, { ...readSnpGuestConfig(stateDir), ...launchConfigOf(r) });
  return r;
}

/**
 * The guest device path that makes the simulator's shim serve VM `vm`'s reports in this process
 * (`<device>/<vm>`, e.g. `/dev/sev-guest/vm-1`): pass it as the `device` option of lib/snp/guest.ts
 * (getReport, getExtReport, getDerivedKey, requestReport with `via: 'ioctl'`) to ask for several
 * guests from one process. Only the shim knows such a path (a real /dev/sev-guest has no children).
 * Throws SimGuestUnknownError for a name that is not a guest name.
 */
export function simGuestDevice(vm: string, device = '/dev/sev-guest'): string {
  if (!isSimGuestName(vm)) throw new SimGuestUnknownError(vm.slice(0, 80), `VM name ${JSON.stringify(vm.slice(0, 80))} is not a simulator guest name`);
  return `${device}/${vm}`;
}
