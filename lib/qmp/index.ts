export * from './errors.js';
export * from './types.js';
export { QmpClient, type QmpClientOptions, type ExecuteOptions } from './client.js';
export { waitForQmp, type WaitForQmpOptions } from './wait.js';
export * from './sev-info.js';
