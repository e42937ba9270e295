/** Certificates: SEV and AMD CA codecs, signing, chain files, verification, built-in AMD roots. */
export {
  Usage,
  Algo,
  Curve,
  SEV_CERT_SIZE,
  SEV_CERT_BODY_SIZE,
  SEV_SIG1_OFFSET,
  SEV_SIG2_OFFSET,
  SEV_SIG_SLOT_SIZE,
  SEV_PUBKEY_SIZE,
  EC_COORD_SIZE,
  P384_SIZE,
  CA_PREAMBLE_SIZE,
  usageName,
  algoName,
  type UsageName,
  type AlgoName,
  type CertKeyType,
  type CertHash,
} from './constants.js';
export { CertificateError, KdsError } from './errors.js';
export {
  emptySignature,
  decodeSevCert,
  encodeSevCert,
  asSevCert,
  sevCertBody,
  p384PublicKey,
  sevCertPublicKey,
  createSevCert,
  signSevCert,
  sevCertFingerprint,
  sevCertDisplay,
  type SevEcPubKey,
  type SevRsaPubKey,
  type SevSignature,
  type SevCert,
  type DecodeOptions,
  type CreateSevCertOptions,
  type SignSevCertOptions,
  type SlotChoice,
} from './sev-cert.js';
export * from './ca-cert.js';
export * from './chain.js';
export * from './verify.js';
export * from './ask-sign.js';
export * from './verify-chain.js';
export * from './trust-anchor.js';
export * from './generation.js';
export * from './builtin.js';
export * from './render.js';
export * from './keys.js';
export * from './report.js';
export * from './kds.js';
export * from './platform-chain.js';
