/**
 * AMD SEV-SNP: attestation reports (codec, TCB, flags), their chains to AMD's built-in roots and the
 * verifier with its policy, the KDS client and the extended report's certificate table; launch digests
 * (byte-exact with sev-snp-measure), their mismatch diagnosis and ID blocks; reports from inside a guest
 * (`/dev/sev-guest` through the addon, configfs-tsm).
 */
export { SnpError, ReportFormatError, SnpCertError, CertTableError, SnpKdsError, SnpPolicyError } from './errors.js';
export {
  REPORT_SIZE,
  SIGNED_LENGTH,
  MIN_REPORT_VERSION,
  MAX_REPORT_VERSION,
  parseReport,
  encodeReport,
  signedRegion,
  signatureP1363,
  setSignature,
  reportProduct,
  formatFirmwareVersion,
  type SnpReport,
  type ReportCpuid,
  type FirmwareVersion,
  type ParseReportOptions,
} from './report.js';
export { TCB_SIZE, decodeTcb, encodeTcb, makeTcb, tcbLessOrEqual, formatTcb, tcbJson, type TcbVersion, type TcbComponent } from './tcb.js';
export {
  decodeGuestPolicy,
  encodeGuestPolicy,
  decodePlatformInfo,
  encodePlatformInfo,
  decodeKeyInfo,
  SigningKey,
  type GuestPolicy,
  type PlatformInfo,
  type KeyInfo,
  type SigningKeyKind,
} from './flags.js';
export { SNP_PRODUCTS, parseProduct, productFromCpuid, tcbLayoutOf, type SnpProduct, type TcbLayout } from './product.js';
export { builtinRoots, type ProductRoots } from './roots.js';
export { parseAmdCert, parseAmdCerts, type AmdCert, type AmdExtensions } from './x509.js';
export { parseCrl, type AmdCrl } from './crl.js';
export { verifySnpReport, verdictJson, type SnpPolicy, type SnpVerifyInput, type SnpVerdict, type SnpCheck, type CheckOutcome } from './verify.js';
export { KdsClient, KDS_BASE_URL, vcekUrl, certChainUrl, crlUrl, type KdsClientOptions, type KdsResult, type KeyKind } from './kds.js';
export { CERT_TABLE_GUIDS, parseCertTable, encodeCertTable, certTableEntry, type CertTableEntry, type CertTableKind } from './certtable.js';
export {
  loadSnpFirmware,
  snpPrefix,
  extendSnpVmsas,
  computeSnpDigest,
  snpLaunchDigest,
  SNP_MAX_VCPUS,
  type SnpFirmware,
  type LoadSnpFirmwareOptions,
  type SnpDigestInput,
  type SnpDigestResult,
} from './digest.js';
export { diagnoseSnpDigest, snpDiagnosisToJSON, type SnpDiagnoseInput, type SnpDiagnosis, type SnpDiagnosisDifference } from './diagnose.js';
export { SNP_VMM_TYPES, parseGuestFeatures, describeGuestFeatures, type SnpVmmType } from './vmsa.js';
export { parseSevMetadata, SevSectionType, type SevMetadataSection } from './metadata.js';
export {
  ID_BLOCK_SIZE,
  ID_AUTH_SIZE,
  IdBlockError,
  buildIdBlock,
  parseIdBlock,
  createIdBlock,
  verifyIdAuth,
  loadSnpSigningKey,
  snpKeyDigest,
  type IdBlockFields,
  type SignedIdBlock,
} from './idblock.js';
export {
  DEFAULT_GUEST_DEVICE,
  REPORT_DATA_SIZE,
  SnpGuestError,
  SnpGuestInputError,
  getReport,
  getExtReport,
  getDerivedKey,
  requestReport,
  type GuestReport,
  type ReportRequest,
  type RequestReportOptions,
  type DerivedKeyRequest,
} from './guest.js';
export { tsmAvailable, tsmReport, TsmError, type TsmOptions, type TsmReport } from './tsm.js';
