/**
 * The legacy (SEV/SEV-ES) attestation report, 208 bytes, signed by the PEK
 * (AMD SEV API spec ATTESTATION; virtee/sev LegacyAttestationReport).
 */
import * as crypto from 'node:crypto';
import { EC_COORD_SIZE, P384_SIZE, Usage } from './constants.js';
import { leToBeFixed } from './bytes.js';
import { CertificateError } from './errors.js';
import { asSevCert, sevCertPublicKey, type SevCert } from './sev-cert.js';

/** Size of a legacy (SEV/SEV-ES) attestation report: 208 bytes. */
export const LEGACY_REPORT_SIZE = 208;
/** The signed part: mnonce ‖ launch_digest ‖ policy (bytes [0, 0x34)). */
export const LEGACY_REPORT_SIGNED = 0x34;

/** A decoded legacy attestation report (mnonce, launch digest, policy and the PEK's ECDSA signature). */
export interface LegacyAttestationReport {
  /** mnonce[16] */
  mnonce: Buffer;
  /** launch_digest[32] */
  launchDigest: Buffer;
  /** policy */
  policy: number;
  /** sig_usage */
  sigUsage: number;
  /** sig_algo */
  sigAlgo: number;
  /** reserved */
  reserved: number;
  /** signature r, s: 72-byte LE each */
  r: Buffer;
  s: Buffer;
}

/** Decodes a 208-byte legacy attestation report; throws CertificateError (ERR_REPORT_DECODE) on any other size. */
export function decodeLegacyReport(buf: Uint8Array, file = 'report'): LegacyAttestationReport {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length !== LEGACY_REPORT_SIZE) {
    throw new CertificateError('ERR_REPORT_DECODE', `${file}: size is ${b.length} bytes, a legacy attestation report is ${LEGACY_REPORT_SIZE}`, {
      cert: file,
      field: 'size',
    });
  }
  return {
    mnonce: Buffer.from(b.subarray(0, 0x10)),
    launchDigest: Buffer.from(b.subarray(0x10, 0x30)),
    policy: b.readUInt32LE(0x30),
    sigUsage: b.readUInt32LE(0x34),
    sigAlgo: b.readUInt32LE(0x38),
    reserved: b.readUInt32LE(0x3c),
    r: Buffer.from(b.subarray(0x40, 0x40 + EC_COORD_SIZE)),
    s: Buffer.from(b.subarray(0x88, 0x88 + EC_COORD_SIZE)),
  };
}

/** Encodes a legacy attestation report to its 208 bytes. */
export function encodeLegacyReport(r: LegacyAttestationReport): Buffer {
  const b = Buffer.alloc(LEGACY_REPORT_SIZE);
  r.mnonce.copy(b, 0);
  r.launchDigest.copy(b, 0x10);
  b.writeUInt32LE(r.policy, 0x30);
  b.writeUInt32LE(r.sigUsage, 0x34);
  b.writeUInt32LE(r.sigAlgo, 0x38);
  b.writeUInt32LE(r.reserved, 0x3c);
  r.r.copy(b, 0x40);
  r.s.copy(b, 0x88);
  return b;
}

/** True if the PEK signed the report (ECDSA P-384 over SHA-256 of bytes [0, 0x34)). */
export function verifyLegacyReport(pekIn: SevCert | Uint8Array, reportIn: Uint8Array | LegacyAttestationReport): boolean {
  const pek = asSevCert(pekIn, { name: 'PEK', usage: Usage.PEK });
  const raw = reportIn instanceof Uint8Array ? Buffer.from(reportIn) : encodeLegacyReport(reportIn);
  const rep = decodeLegacyReport(raw);
  const r = leToBeFixed(rep.r, P384_SIZE);
  const s = leToBeFixed(rep.s, P384_SIZE);
  if (!r || !s) return false;
  return crypto.verify('sha256', raw.subarray(0, LEGACY_REPORT_SIGNED), { key: sevCertPublicKey(pek), dsaEncoding: 'ieee-p1363' }, Buffer.concat([r, s]));
}

/** Sign a report with the PEK private key (what firmware does; used by the simulator and tests). */
export function signLegacyReport(fields: { mnonce: Buffer; launchDigest: Buffer; policy: number }, pekPrivateKey: crypto.KeyObject): Buffer {
  const b = Buffer.alloc(LEGACY_REPORT_SIZE);
  if (fields.mnonce.length !== 16 || fields.launchDigest.length !== 32) {
    throw new CertificateError('ERR_REPORT_ENCODE', 'report: mnonce must be 16 bytes and launch digest 32 bytes', { cert: 'report', field: 'mnonce' });
  }
  fields.mnonce.copy(b, 0);
  fields.launchDigest.copy(b, 0x10);
  b.writeUInt32LE(fields.policy >>> 0, 0x30);
  b.writeUInt32LE(Usage.PEK, 0x34);
  b.writeUInt32LE(0x0002, 0x38); // ECDSA_SHA256
  const sig = crypto.sign('sha256', b.subarray(0, LEGACY_REPORT_SIGNED), { key: pekPrivateKey, dsaEncoding: 'ieee-p1363' });
  Buffer.from(sig.subarray(0, P384_SIZE)).reverse().copy(b, 0x40);
  Buffer.from(sig.subarray(P384_SIZE)).reverse().copy(b, 0x88);
  return b;
}
