/**
 * The simulated guest side of an SNP VM the QEMU wrapper launched: what the wrapper recorded at
 * SNP_LAUNCH_FINISH (`guests/<vm>/snp-launch.json`: measurement, policy, host data, ID fields)
 * becomes the launch the simulated firmware signs into reports (`snp-guest.json`), so a guest agent
 * running for that VM on the simulator reports exactly what was launched.
 *
 * SIMULATED, and one launch at a time: snp-guest.json is the simulator's one guest identity, so
 * the last VM linked is the one every report names (the demo runs its SNP VMs one after the other).
 */
import fs from 'node:fs';
import path from 'node:path';
import { SNP_LAUNCH_RECORD, type SnpLaunchRecord } from '../qemu/snp-guest.js';
import { readSnpGuestConfig, SnpGuestConfigError, writeSnpGuestConfig } from './config.js';

const HEX = (n: number) => new RegExp(`^[0-9a-f]{${2 * n}}$`);

/**
 * Reads `<stateDir>/guests/<vm>/snp-launch.json` (checked: hex lengths, policy) and writes its launch
 * values into `<stateDir>/snp-guest.json`, keeping the configured product and keys. Returns the record.
 * Throws SnpGuestConfigError when the VM has no (valid) record.
 */
export function linkSnpLaunch(stateDir: string, vm: string): SnpLaunchRecord {
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(vm) || vm.startsWith('.'))
    throw new SnpGuestConfigError(`VM name ${JSON.stringify(vm.slice(0, 80))} is not a simulator guest name`);
  const file = path.join(stateDir, 'guests', vm, SNP_LAUNCH_RECORD);
  let r: SnpLaunchRecord;
  try {
    r = JSON.parse(fs.readFileSync(file, 'utf8')) as SnpLaunchRecord;
  } catch (e) {
    throw new SnpGuestConfigError(
      `${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no SNP launch recorded for this VM (did the wrapper play QEMU >= 9.1?)' : (e as Error).message}`,
    );
  }
  const ok =
    r &&
    typeof r === 'object' &&
    HEX(48).test(String(r.measurement)) &&
    HEX(32).test(String(r.hostData)) &&
    HEX(16).test(String(r.familyId)) &&
    HEX(16).test(String(r.imageId)) &&
    /^0x[0-9a-f]{1,16}$/.test(String(r.policy)) &&
    Number.isInteger(r.guestSvn);
  if (!ok) throw new SnpGuestConfigError(`${file}: not an SNP launch record`);
  const current = readSnpGuestConfig(stateDir);
  writeSnpGuestConfig(stateDir, {
    ...current,
    measurement: r.measurement,
    policy: r.policy,
    hostData: r.hostData,
    familyId: r.familyId,
    imageId: r.imageId,
    guestSvn: r.guestSvn,
  });
  return r;
}
