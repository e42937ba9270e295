/** Public API of sevkit. Re-exports only; each module documents itself. */
export * from './errors.js';
export * from './qmp/index.js';
export * from './certs/index.js';
export * from './firmware/index.js';
export * from './aleph/index.js';
export * from './launch/index.js';
export * from './platform/index.js';
export * from './crn/index.js';
export * from './owner/index.js';
export * from './host/index.js';
export * from './sim/index.js';
export * from './vm/index.js';
