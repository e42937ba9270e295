/**
 * AMD's SNP certificates (ARK, ASK, ASVK, VCEK, VLEK) as X.509, parsed with
 * @peculiar/asn1-x509, plus AMD's private extensions (1.3.6.1.4.1.3704.1.*),
 * which Node's X509Certificate does not expose. VCEKs carry serial number 0,
 * which this parser accepts. Extensions are looked up by OID (their order
 * differs between generations); duplicates are refused.
 */
import { createPublicKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate } from '@peculiar/asn1-x509';
import type { Name } from '@peculiar/asn1-x509';
import { children, derOid, derUint, readOnly, readTlv } from './der.js';
import { SnpCertError } from './errors.js';

/** OID of RSASSA-PSS. */
export const OID_RSASSA_PSS = '1.2.840.113549.1.1.10';
const OID_SHA384 = '2.16.840.1.101.3.4.2.2';
const OID_MGF1 = '1.2.840.113549.1.1.8';
const OID_CN = '2.5.4.3';
const AMD = '1.3.6.1.4.1.3704.1';

/** AMD's extensions of a VCEK/VLEK. SPLs are absent when the certificate lacks them. */
export interface AmdExtensions {
  /** .1 structVersion (0 Milan/Genoa, 1 Turin). */
  structVersion?: number;
  /** .2 productName, e.g. "Milan-B0", "Genoa", "Turin". */
  productName?: string;
  /** .3.1 blSPL. */
  blSPL?: number;
  /** .3.2 teeSPL. */
  teeSPL?: number;
  /** .3.3 snpSPL. */
  snpSPL?: number;
  /** .3.4–.3.7 spl4–spl7 (reserved; 0 when present). */
  reservedSPLs: Partial<Record<'spl4' | 'spl5' | 'spl6' | 'spl7', number>>;
  /** .3.8 ucodeSPL. */
  ucodeSPL?: number;
  /** .3.9 fmcSPL (Turin). */
  fmcSPL?: number;
  /** .4 hwID (VCEK): 64 bytes, 8 on Turin; raw or wrapped in one OCTET STRING. */
  hwID?: Buffer;
  /** .5 csp_id (VLEK), e.g. "CN=cc-us-east-2.amazonaws.com". */
  cspId?: string;
}

/** RSASSA-PSS parameters of a signature. */
export interface PssParams {
  hash: string;
  mgfHash: string;
  saltLength: number;
  trailerField: number;
}

/** One parsed AMD certificate. */
export interface AmdCert {
  /** What the caller called it (ARK, ASK, VCEK, a file name), for error messages. */
  name: string;
  der: Buffer;
  /** The DER of tbsCertificate, the signed bytes. */
  tbs: Buffer;
  /** X.509 version number (3 for v3). */
  version: number;
  /** Serial number bytes (big-endian as encoded; VCEKs have 0). */
  serial: Buffer;
  subjectCn: string;
  issuerCn: string;
  notBefore: Date;
  notAfter: Date;
  /** Signature algorithm OID and, for RSASSA-PSS, its parameters. */
  signatureAlgorithm: string;
  pss: PssParams | undefined;
  signature: Buffer;
  publicKey: KeyObject;
  /** OID → extension (critical flag and the extnValue contents). */
  extensions: Map<string, { critical: boolean; value: Buffer }>;
  amd: AmdExtensions;
}

/** The CN of an X.509 name ('' when there is none). */
export function cn(name: Name): string {
  for (const rdn of name) for (const a of rdn) if (a.type === OID_CN) return a.value.toString();
  return '';
}

/** Decode RSASSA-PSS parameters (RFC 4055 defaults for absent fields). Throws SnpCertError. */
export function parsePss(params: ArrayBuffer | null | undefined, cert: string): PssParams {
  const w: [string, string] = [cert, 'signature algorithm parameters'];
  if (!params) throw new SnpCertError(cert, 'RSASSA-PSS without parameters', { field: w[1] });
  const seq = readOnly(Buffer.from(params), w);
  if (seq.tag !== 0x30) throw new SnpCertError(cert, 'RSASSA-PSS parameters are not a SEQUENCE', { field: w[1] });
  // Defaults per RFC 4055: SHA-1, MGF1-SHA-1, salt 20, trailer 1; AMD's are all explicit but the trailer.
  const p: PssParams = { hash: '1.3.14.3.2.26', mgfHash: '1.3.14.3.2.26', saltLength: 20, trailerField: 1 };
  for (const f of children(seq.value, w)) {
    const inner = readOnly(f.value, w);
    if (f.tag === 0xa0) p.hash = derOid(children(inner.value, w)[0]!, w);
    else if (f.tag === 0xa1) {
      const [oid, alg] = children(inner.value, w);
      if (!oid || derOid(oid, w) !== OID_MGF1 || !alg) throw new SnpCertError(cert, 'mask generation is not MGF1', { field: w[1] });
      p.mgfHash = derOid(children(alg.value, w)[0]!, w);
    } else if (f.tag === 0xa2) p.saltLength = derUint(inner, w);
    else if (f.tag === 0xa3) p.trailerField = derUint(inner, w);
    else throw new SnpCertError(cert, `unknown RSASSA-PSS parameter tag 0x${f.tag.toString(16)}`, { field: w[1] });
  }
  return p;
}

/** Whether PSS parameters are AMD's: SHA-384, MGF1-SHA-384, salt 48, trailer 1. */
export function isAmdPss(p: PssParams | undefined): boolean {
  return p !== undefined && p.hash === OID_SHA384 && p.mgfHash === OID_SHA384 && p.saltLength === 48 && p.trailerField === 1;
}

function parseAmdExtensions(exts: Map<string, { critical: boolean; value: Buffer }>, cert: string): AmdExtensions {
  const out: AmdExtensions = { reservedSPLs: {} };
  const int = (oid: string, field: string): number | undefined => {
    const e = exts.get(oid);
    return e === undefined ? undefined : derUint(readOnly(e.value, [cert, field]), [cert, field]);
  };
  const ia5 = (oid: string, field: string): string | undefined => {
    const e = exts.get(oid);
    if (e === undefined) return undefined;
    const t = readOnly(e.value, [cert, field]);
    if (t.tag !== 0x16) throw new SnpCertError(cert, `${field}: expected IA5String`, { field });
    if (!t.value.every((c) => c < 0x80)) throw new SnpCertError(cert, `${field}: not ASCII`, { field });
    return t.value.toString('latin1');
  };
  const set = <K extends keyof AmdExtensions>(k: K, v: AmdExtensions[K] | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  set('structVersion', int(`${AMD}.1`, 'structVersion'));
  set('productName', ia5(`${AMD}.2`, 'productName'));
  set('blSPL', int(`${AMD}.3.1`, 'blSPL'));
  set('teeSPL', int(`${AMD}.3.2`, 'teeSPL'));
  set('snpSPL', int(`${AMD}.3.3`, 'snpSPL'));
  for (const [i, k] of [
    [4, 'spl4'],
    [5, 'spl5'],
    [6, 'spl6'],
    [7, 'spl7'],
  ] as const) {
    const v = int(`${AMD}.3.${i}`, k);
    if (v !== undefined) out.reservedSPLs[k] = v;
  }
  set('ucodeSPL', int(`${AMD}.3.8`, 'ucodeSPL'));
  set('fmcSPL', int(`${AMD}.3.9`, 'fmcSPL'));
  const hw = exts.get(`${AMD}.4`);
  if (hw !== undefined) {
    // Real KDS certificates carry the bytes raw; some test certificates wrap them in an OCTET STRING.
    const v = hw.value;
    if (v.length === 64 || v.length === 8) out.hwID = Buffer.from(v);
    else {
      const t = readOnly(v, [cert, 'hwID']);
      if (t.tag !== 0x04 || (t.value.length !== 64 && t.value.length !== 8))
        throw new SnpCertError(cert, `hwID: expected 64 or 8 bytes, got ${v.length}`, { field: 'hwID' });
      out.hwID = Buffer.from(t.value);
    }
  }
  set('cspId', ia5(`${AMD}.5`, 'csp_id'));
  return out;
}

/**
 * Parse one certificate, DER or PEM (the first PEM block). `name` labels
 * errors. Throws SnpCertError for anything that is not a well-formed X.509
 * certificate with a usable public key, or has duplicate extensions or
 * malformed AMD extensions. Says nothing about trust: see chain.ts.
 */
export function parseAmdCert(input: Uint8Array | string, name = 'certificate'): AmdCert {
  const der = toDer(input, name);
  let c: Certificate;
  try {
    if (readTlv(der, 0, [name, 'certificate']).end !== der.length)
      throw new SnpCertError(name, 'trailing bytes after the certificate', { code: 'ERR_SNP_CERT_FORMAT' });
    c = AsnConvert.parse(der, Certificate);
  } catch (e) {
    if (e instanceof SnpCertError) throw e;
    throw new SnpCertError(name, `not an X.509 certificate (${e instanceof Error ? e.message : String(e)})`, { cause: e, code: 'ERR_SNP_CERT_FORMAT' });
  }
  const t = c.tbsCertificate;
  // asn1-schema re-encodes nothing here: tbsCertificateRaw is the original bytes, exactly what was signed.
  if (!c.tbsCertificateRaw) throw new SnpCertError(name, 'no tbsCertificate bytes', { code: 'ERR_SNP_CERT_FORMAT' });
  const extensions = new Map<string, { critical: boolean; value: Buffer }>();
  for (const e of t.extensions ?? []) {
    if (extensions.has(e.extnID)) throw new SnpCertError(name, `duplicate extension ${e.extnID}`, { field: e.extnID, code: 'ERR_SNP_CERT_FORMAT' });
    extensions.set(e.extnID, { critical: e.critical, value: Buffer.from(e.extnValue.buffer) });
  }
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: Buffer.from(AsnConvert.serialize(t.subjectPublicKeyInfo)), format: 'der', type: 'spki' });
  } catch (e) {
    throw new SnpCertError(name, 'unusable public key', { field: 'subjectPublicKeyInfo', cause: e, code: 'ERR_SNP_CERT_FORMAT' });
  }
  const sigAlg = c.signatureAlgorithm.algorithm;
  return {
    name,
    der,
    tbs: Buffer.from(c.tbsCertificateRaw),
    version: t.version + 1,
    serial: Buffer.from(t.serialNumber),
    subjectCn: cn(t.subject),
    issuerCn: cn(t.issuer),
    notBefore: t.validity.notBefore.getTime(),
    notAfter: t.validity.notAfter.getTime(),
    signatureAlgorithm: sigAlg,
    pss: sigAlg === OID_RSASSA_PSS ? parsePss(c.signatureAlgorithm.parameters, name) : undefined,
    signature: Buffer.from(c.signatureValue),
    publicKey,
    extensions,
    amd: parseAmdExtensions(extensions, name),
  };
}

/** DER bytes of a certificate given as DER or PEM. */
export function toDer(input: Uint8Array | string, name: string): Buffer {
  const b = typeof input === 'string' ? Buffer.from(input, 'latin1') : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  const text = b.subarray(0, 64).toString('latin1');
  if (!text.includes('-----BEGIN')) return Buffer.from(b);
  const blocks = pemBlocks(b.toString('latin1'));
  if (blocks.length === 0) throw new SnpCertError(name, 'no PEM CERTIFICATE block', { code: 'ERR_SNP_CERT_FORMAT' });
  return blocks[0]!;
}

/** Every `-----BEGIN CERTIFICATE-----` block of a PEM text, as DER. */
export function pemBlocks(text: string): Buffer[] {
  return [...text.matchAll(/-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]*?)-----END CERTIFICATE-----/g)].map((m) =>
    Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'),
  );
}

/** Parse every certificate of a PEM bundle (e.g. a KDS cert_chain: ASK then ARK), or one DER certificate. */
export function parseAmdCerts(input: Uint8Array, name = 'certificates'): AmdCert[] {
  const b = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (!b.subarray(0, 64).toString('latin1').includes('-----BEGIN')) return [parseAmdCert(b, name)];
  const blocks = pemBlocks(b.toString('latin1'));
  if (blocks.length === 0) throw new SnpCertError(name, 'no PEM CERTIFICATE block', { code: 'ERR_SNP_CERT_FORMAT' });
  return blocks.map((d, i) => parseAmdCert(d, `${name}[${i}]`));
}
