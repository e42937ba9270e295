/** aleph's wire protocol, used by both the CRN and the guest owner: wallets, signed request headers, message shapes. */
export {
  OPERATION_SKEW_MS,
  DEFAULT_KEY_LIFETIME_MS,
  MAX_AUTH_HEADER_BYTES,
  AuthError,
  createAuthSession,
  signOperation,
  verifyAuthHeaders,
  verifyAuthHeadersAsync,
  SignedPubKeyCache,
  isOwner,
} from './auth.js';
export { EthRecoverWorker } from './recover-worker.js';
export type { PubKeyPayload, OperationPayload, AuthSession, VerifiedCaller, VerifyRequest } from './auth.js';
export type { AlephSevInfo, SevMeasurementResponse } from './messages.js';
export { toAlephSevInfo, hostReportOf, hostReportFromJson } from './sev-info.js';
export {
  WalletError,
  ethMessageHash,
  ethChecksumAddress,
  isEthAddress,
  ethRecoverAddress,
  EthWallet,
  isSolAddress,
  solVerify,
  SolWallet,
  parseWalletKey,
} from './wallet.js';
export type { WalletChain, Wallet } from './wallet.js';
