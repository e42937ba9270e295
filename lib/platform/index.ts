/** Host-side SEV platform API: the /dev/sev commands, typed. */
export * from './constants.js';
export * from './layout.js';
export * from './errors.js';
export * from './platform.js';
export { getBinding, getNativeBinding, BindingLoadError } from '../binding.js';
export type { NativeBinding, NativeConstants, NativeStructLayout } from '../binding.js';
