export * from './errors.js';
export * from './argv.js';
export { hostSevInfo } from './host.js';
export {
  Supervisor,
  ConfidentialVm,
  decodeBase64Strict,
  type VmState,
  type VmSpec,
  type VmSevSpec,
  type SupervisorOptions,
  type VmMeasurement,
  type InjectSecretArgs,
} from './supervisor.js';
export { defaultRunRoot } from './rundir.js';
export * from './snp.js';
