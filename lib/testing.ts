/**
 * `sevkit/testing`: the seams sevkit's own tests use, for an embedder's tests
 * too. Nothing here belongs in production code: it replaces the native
 * binding, writes fake hosts, and arms faults in a running simulator.
 */
export { setBinding } from './binding.js';
export { writeHostFixture, buildOvmfImage, CPU_PRESETS, GENOA_SYSCFG } from './sim/host-fixture.js';
export type { HostFixture, HostFixtureSpec, CpuPreset, OvmfTailOptions } from './sim/host-fixture.js';
export { armFault, clearFaults, SimFaultError } from './sim/faults.js';
export type { FaultSpec } from './sim/faults.js';
