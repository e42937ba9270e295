/**
 * Attested TLS as aleph-vm's in-guest agent does it (shared/specs/snp-launch.md
 * §4.3): a per-boot P-384 key, an attestation report whose REPORT_DATA binds
 * that key, and a self-signed certificate that carries the report in extension
 * 1.3.6.1.4.1.60000.1.1 (an OCTET STRING around the UTF-8 JSON
 * `{"tee_type":"sev-snp","data":"<hex report>"}`). Both ends use this module:
 * the guest agent builds the certificate, the owner takes it apart after the
 * handshake. Parsing treats every byte as hostile: sizes are bounded and
 * anything unexpected is a RaTlsError, never a crash.
 */
import crypto, { type KeyObject } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier,
  AttributeTypeAndValue,
  AttributeValue,
  BasicConstraints,
  Certificate,
  Extension,
  Extensions,
  GeneralName,
  Name,
  RelativeDistinguishedName,
  SubjectAlternativeName,
  SubjectPublicKeyInfo,
  TBSCertificate,
  Validity,
  Version,
} from '@peculiar/asn1-x509';
import { SnpError } from './errors.js';
import { REPORT_SIZE } from './report.js';

/** The certificate extension aleph's agent puts the report in. */
export const ALEPH_ATTESTATION_OID = '1.3.6.1.4.1.60000.1.1';
/** Domain label of the boot report's REPORT_DATA (NUL included). */
export const ALEPH_TLS_KEY_LABEL = 'aleph-attest-tls-key-v1\0';
/** Domain label of a fresh report's REPORT_DATA (NUL included). */
export const ALEPH_FRESH_LABEL = 'aleph-attest-fresh-v1\0';
/** An uncompressed P-384 point (0x04‖X‖Y) is this long. */
export const P384_POINT_SIZE = 97;
/** Largest certificate parsed (aleph's is ~3 KB: the report as hex is 2368 characters). */
export const MAX_ATTESTED_CERT_BYTES = 16 * 1024;

const OID_EC_PUBLIC_KEY = '1.2.840.10045.2.1';
const OID_P384 = '1.3.132.0.34';
const OID_ECDSA_SHA384 = '1.2.840.10045.4.3.3';
const OID_SAN = '2.5.29.17';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';

/** An attested certificate (or its report JSON) that cannot be used; `field` names the part. */
export class RaTlsError extends SnpError {
  constructor(message: string, field?: string) {
    super('ERR_SNP_RATLS', message, field === undefined ? {} : { field });
  }
}

/** The 97-byte uncompressed point of a P-384 public (or private) key. Throws RaTlsError for another key type. */
export function p384PublicPoint(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? crypto.createPublicKey(key) : key;
  if (pub.asymmetricKeyType !== 'ec' || pub.asymmetricKeyDetails?.namedCurve !== 'secp384r1') throw new RaTlsError('the TLS key must be ECDSA P-384', 'key');
  const spki = AsnConvert.parse(pub.export({ type: 'spki', format: 'der' }), SubjectPublicKeyInfo);
  return Buffer.from(spki.subjectPublicKey);
}

function checkPoint(point: Uint8Array): void {
  if (point.length !== P384_POINT_SIZE || point[0] !== 0x04)
    throw new RaTlsError(`a P-384 public key is a ${P384_POINT_SIZE}-byte uncompressed point, got ${point.length} bytes`, 'key');
}

/** REPORT_DATA of the boot report: SHA-384(label ‖ point) ‖ 16 zero bytes (64 bytes). */
export function alephKeyBoundReportData(point: Uint8Array): Buffer {
  checkPoint(point);
  const h = crypto.createHash('sha384').update(ALEPH_TLS_KEY_LABEL, 'latin1').update(point).digest();
  return Buffer.concat([h, Buffer.alloc(16)]);
}

/** REPORT_DATA of a fresh report: SHA-384(label ‖ point ‖ nonce) ‖ 16 zero bytes (64 bytes). */
export function alephFreshReportData(point: Uint8Array, nonce: Uint8Array): Buffer {
  checkPoint(point);
  const h = crypto.createHash('sha384').update(ALEPH_FRESH_LABEL, 'latin1').update(point).update(nonce).digest();
  return Buffer.concat([h, Buffer.alloc(16)]);
}

/** SHA-384 of the TLS key's point: how an owner's envelope names the key it is for. */
export function tlsKeyDigest(point: Uint8Array): Buffer {
  checkPoint(point);
  return crypto.createHash('sha384').update(point).digest();
}

/** aleph's attestation JSON for a report (UTF-8 bytes). */
export function encodeAttestationJson(report: Uint8Array): Buffer {
  if (report.length !== REPORT_SIZE) throw new RaTlsError(`a report is ${REPORT_SIZE} bytes, got ${report.length}`, 'report');
  return Buffer.from(JSON.stringify({ tee_type: 'sev-snp', data: Buffer.from(report).toString('hex') }), 'utf8');
}

/** The report inside aleph's attestation JSON. Throws RaTlsError for anything but `{"tee_type":"sev-snp","data":<2368 hex digits>}`. */
export function decodeAttestationJson(bytes: Uint8Array): Buffer {
  if (bytes.length > MAX_ATTESTED_CERT_BYTES) throw new RaTlsError(`attestation JSON of ${bytes.length} bytes is too large`, 'json');
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new RaTlsError('the attestation is not valid JSON', 'json');
  }
  const o = v as { tee_type?: unknown; data?: unknown };
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new RaTlsError('the attestation JSON is not an object', 'json');
  if (o.tee_type !== 'sev-snp') throw new RaTlsError(`tee_type is ${JSON.stringify(o.tee_type)?.slice(0, 40)}, expected "sev-snp"`, 'tee_type');
  if (typeof o.data !== 'string' || o.data.length !== 2 * REPORT_SIZE || !/^[0-9a-fA-F]+$/.test(o.data))
    throw new RaTlsError(`data must be the ${REPORT_SIZE}-byte report as ${2 * REPORT_SIZE} hex digits`, 'data');
  return Buffer.from(o.data, 'hex');
}

/** Inputs of buildAttestedCertificate. */
export interface AttestedCertificateOptions {
  /** The P-384 private key of the TLS server (the certificate is self-signed with it). */
  privateKey: KeyObject;
  /** The report whose REPORT_DATA binds the key (1184 bytes). */
  report: Uint8Array;
  /** Subject CN and SAN dNSName (default `localhost`, as aleph's agent). */
  hostname?: string;
  /** Validity start (default one hour ago, for skewed clocks). */
  notBefore?: Date;
  /** Validity end (default a year after notBefore). */
  notAfter?: Date;
}

/** The certificate, DER and PEM. */
export interface AttestedCertificate {
  der: Buffer;
  pem: string;
}

function nameOf(cn: string): Name {
  return new Name([new RelativeDistinguishedName([new AttributeTypeAndValue({ type: '2.5.4.3', value: new AttributeValue({ utf8String: cn }) })])]);
}

/** A self-signed ECDSA-SHA384 certificate for `privateKey` carrying `report` in aleph's extension. Throws RaTlsError. */
export function buildAttestedCertificate(o: AttestedCertificateOptions): AttestedCertificate {
  p384PublicPoint(o.privateKey); // P-384 only
  const json = encodeAttestationJson(o.report);
  const host = o.hostname ?? 'localhost';
  const notBefore = o.notBefore ?? new Date(Date.now() - 3600_000);
  const notAfter = o.notAfter ?? new Date(notBefore.getTime() + 365 * 86400_000);
  const serial = crypto.randomBytes(16);
  serial[0]! &= 0x7f; // a positive INTEGER
  serial[0]! |= 0x01; // and minimal: no leading zero byte
  const sigAlg = new AlgorithmIdentifier({ algorithm: OID_ECDSA_SHA384 });
  const spki = AsnConvert.parse(crypto.createPublicKey(o.privateKey).export({ type: 'spki', format: 'der' }), SubjectPublicKeyInfo);
  const ext = (extnID: string, value: ArrayBuffer, critical = false) => new Extension({ extnID, critical, extnValue: new OctetString(value) });
  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: new Uint8Array(serial).buffer,
    signature: sigAlg,
    issuer: nameOf(host),
    validity: new Validity({ notBefore, notAfter }),
    subject: nameOf(host),
    subjectPublicKeyInfo: spki,
    extensions: new Extensions([
      ext(OID_BASIC_CONSTRAINTS, AsnConvert.serialize(new BasicConstraints({ cA: false })), true),
      ext(OID_SAN, AsnConvert.serialize(new SubjectAlternativeName([new GeneralName({ dNSName: host })]))),
      ext(ALEPH_ATTESTATION_OID, AsnConvert.serialize(new OctetString(new Uint8Array(json).buffer))),
    ]),
  });
  const tbsDer = Buffer.from(AsnConvert.serialize(tbs));
  const signature = crypto.sign('sha384', tbsDer, o.privateKey);
  const cert = new Certificate({ tbsCertificate: tbs, signatureAlgorithm: sigAlg, signatureValue: new Uint8Array(signature).buffer });
  const der = Buffer.from(AsnConvert.serialize(cert));
  const b64 = der
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '');
  return { der, pem: `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n` };
}

/** What an attested certificate holds. */
export interface ParsedAttestedCertificate {
  /** The 1184-byte report from the extension (not verified here). */
  report: Buffer;
  /** The certificate's P-384 public key as a 97-byte point. */
  publicPoint: Buffer;
  /** The certificate's SubjectPublicKeyInfo, DER. */
  spki: Buffer;
}

/**
 * Take an attested certificate apart: its P-384 key and the report of the
 * aleph extension. Checks only the shape (the caller verifies the report and
 * that REPORT_DATA binds `publicPoint`). Throws RaTlsError.
 */
export function parseAttestedCertificate(der: Uint8Array): ParsedAttestedCertificate {
  if (der.length > MAX_ATTESTED_CERT_BYTES)
    throw new RaTlsError(`a certificate of ${der.length} bytes is larger than ${MAX_ATTESTED_CERT_BYTES}`, 'certificate');
  let cert: Certificate;
  try {
    cert = AsnConvert.parse(Buffer.from(der), Certificate);
  } catch (e) {
    throw new RaTlsError(`the peer certificate is not X.509 DER: ${(e as Error).message}`, 'certificate');
  }
  const tbs = cert.tbsCertificate;
  const ki = tbs.subjectPublicKeyInfo;
  const curve = ki.algorithm.parameters ? safeOid(ki.algorithm.parameters) : undefined;
  if (ki.algorithm.algorithm !== OID_EC_PUBLIC_KEY || curve !== OID_P384) throw new RaTlsError('the peer certificate key is not ECDSA P-384', 'key');
  const publicPoint = Buffer.from(ki.subjectPublicKey);
  checkPoint(publicPoint);
  const exts = (tbs.extensions ?? []).filter((e) => e.extnID === ALEPH_ATTESTATION_OID);
  if (exts.length !== 1)
    throw new RaTlsError(
      exts.length
        ? `the certificate has ${exts.length} attestation extensions`
        : `the peer certificate has no attestation extension (${ALEPH_ATTESTATION_OID})`,
      'extension',
    );
  let inner: OctetString;
  try {
    inner = AsnConvert.parse(exts[0]!.extnValue.buffer, OctetString);
  } catch {
    throw new RaTlsError('the attestation extension is not a DER OCTET STRING', 'extension');
  }
  const report = decodeAttestationJson(new Uint8Array(inner.buffer));
  return { report, publicPoint, spki: Buffer.from(AsnConvert.serialize(ki)) };
}

function safeOid(params: ArrayBuffer): string | undefined {
  const b = Buffer.from(params);
  // DER OBJECT IDENTIFIER 1.3.132.0.34: 06 05 2b 81 04 00 22
  return b.equals(Buffer.from('06052b81040022', 'hex')) ? OID_P384 : b.toString('hex');
}
