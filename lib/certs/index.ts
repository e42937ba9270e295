/** Certificates: SEV and AMD CA codecs, signing, chain files, verification, built-in AMD roots. */
export * from './constants.js';
export { CertificateError, KdsError } from './errors.js';
export * from './sev-cert.js';
export * from './ca-cert.js';
export * from './chain.js';
export * from './verify.js';
export * from './ask-sign.js';
export * from './verify-chain.js';
export * from './generation.js';
export * from './builtin.js';
export * from './render.js';
export * from './keys.js';
export * from './report.js';
export * from './kds.js';
export * from './platform-chain.js';
