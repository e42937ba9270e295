export * from './backend.js';
export { CrnService, tokenEquals, CERT_CHAIN_SIZE, SESSION_BLOB_SIZE, type CrnServiceOptions, type AllocationRequest, type CrnVmState, type CrnVmSummary } from './service.js';
export { startCrnServer, parseListen, type CrnServer } from './server.js';

export * from './launchers.js';
export * from './aleph-mode.js';
export * from './authorize.js';
export * from './allocations.js';
export type { CrnRoute, CrnRouteContext, CrnExtension } from './routes.js';
