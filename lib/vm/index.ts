/** The QEMU supervisor for confidential VMs: argv in aleph-vm's layout, launch to measurement, secret injection, stop. */
export * from './errors.js';
export {
  buildQemuArgv,
  sevGuestObject,
  alephConfidentialArgv,
  type SevGuestArgs,
  type QemuArgvOptions,
  type AlephConfidentialConfig,
  type SevAddressBits,
} from './argv.js';
export { hostAddressBits } from './host.js';
export {
  Supervisor,
  ConfidentialVm,
  type VmState,
  type VmSpec,
  type VmSevSpec,
  type SupervisorOptions,
  type VmMeasurement,
  type InjectSecretArgs,
} from './supervisor.js';
export { defaultRunRoot } from './rundir.js';
export * from './snp.js';
