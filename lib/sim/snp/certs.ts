/**
 * The simulator's SNP certificate chain, minted as X.509 the way AMD's KDS
 * shapes it (shared/specs/snp-attestation.md §2) but rooted in the simulator's
 * TEST keys:
 *
 *   ARK-<P>  (RSA-4096, self-signed, RSA-PSS/SHA-384/salt 48)
 *    ├─ SEV-<P>       ASK  (RSA-4096) ── SEV-VCEK (P-384, AMD extensions, serial 0)
 *    └─ SEV-VLEK-<P>  ASVK (RSA-4096) ── SEV-VLEK (P-384, csp_id, no hwID)
 *
 * The ARK/ASK are the simulator's SEV roots (the same RSA keys in X.509, as on
 * AMD parts). Every certificate says TEST in its OU; none chains to AMD.
 * Dates are fixed and signatures deterministic, so the same seed gives the
 * same DER every time (the KDS stand-in serves stable bytes).
 */
import crypto, { type KeyObject } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier,
  AttributeTypeAndValue,
  AttributeValue,
  AuthorityKeyIdentifier,
  BasicConstraints,
  Certificate,
  CertificateList,
  CRLDistributionPoints,
  DistributionPoint,
  DistributionPointName,
  Extension,
  Extensions,
  GeneralName,
  KeyIdentifier,
  KeyUsage,
  KeyUsageFlags,
  Name,
  RelativeDistinguishedName,
  SubjectKeyIdentifier,
  SubjectPublicKeyInfo,
  TBSCertList,
  TBSCertificate,
  Time,
  Validity,
  Version,
} from '@peculiar/asn1-x509';
import type { SnpProduct } from '../../snp/product.js';
import type { TcbVersion } from '../../snp/tcb.js';
import { crlUrl } from '../../snp/kds.js';
import { deriveP384, deriveRsa, rsaPssSignDeterministic } from '../detcrypto.js';

/** The OU every simulator certificate carries instead of AMD's "Engineering". */
export const SIM_TEST_OU = 'Engineering (sevkit SIMULATOR TEST key, not AMD)';

/** AMD's VCEK/VLEK extension OIDs (prefix 1.3.6.1.4.1.3704.1). */
export const AmdOid = {
  structVersion: '1.3.6.1.4.1.3704.1.1',
  productName: '1.3.6.1.4.1.3704.1.2',
  blSPL: '1.3.6.1.4.1.3704.1.3.1',
  teeSPL: '1.3.6.1.4.1.3704.1.3.2',
  snpSPL: '1.3.6.1.4.1.3704.1.3.3',
  spl4: '1.3.6.1.4.1.3704.1.3.4',
  spl5: '1.3.6.1.4.1.3704.1.3.5',
  spl6: '1.3.6.1.4.1.3704.1.3.6',
  spl7: '1.3.6.1.4.1.3704.1.3.7',
  ucodeSPL: '1.3.6.1.4.1.3704.1.3.8',
  fmcSPL: '1.3.6.1.4.1.3704.1.3.9',
  hwID: '1.3.6.1.4.1.3704.1.4',
  cspId: '1.3.6.1.4.1.3704.1.5',
} as const;

const OID_RSA_PSS = '1.2.840.113549.1.1.10';
/** RSASSA-PSS-params {sha384, mgf1(sha384), salt 48, trailer 1 (default)}: what every AMD signature uses. */
const PSS_SHA384_PARAMS = Buffer.from('3034a00f300d06096086480165030402020500a11c301a06092a864886f70d010108300d06096086480165030402020500a203020130', 'hex');

/** Serial numbers of AMD's roots per product (spec §2.1), reused for the TEST roots. */
const SERIALS: Record<SnpProduct, { ark: number; ask: number; asvk: number }> = {
  Milan: { ark: 0x10000, ask: 0x10001, asvk: 0x10101 },
  Genoa: { ark: 0x20000, ask: 0x20002, asvk: 0x20101 },
  Turin: { ark: 0x30000, ask: 0x30001, asvk: 0x30101 },
};

/**
 * Fixed validity windows (deterministic DER): the roots for 25 years, a VCEK
 * for 7 as at KDS. A real VLEK lasts one year; the TEST one lasts ten, so that
 * simulated reports keep verifying at "now" for years.
 */
const ROOT_VALIDITY = { notBefore: new Date('2024-01-01T00:00:00Z'), notAfter: new Date('2049-01-01T00:00:00Z') };
const VCEK_VALIDITY = { notBefore: new Date('2025-01-01T00:00:00Z'), notAfter: new Date('2032-01-01T00:00:00Z') };
const VLEK_VALIDITY = { notBefore: new Date('2026-01-01T00:00:00Z'), notAfter: new Date('2036-01-01T00:00:00Z') };

/** The simulated KDS productName: what KDS puts in real VCEKs of that line. */
export function simProductName(product: SnpProduct): string {
  return product === 'Milan' ? 'Milan-B0' : product;
}

function pssAlgorithm(): AlgorithmIdentifier {
  return new AlgorithmIdentifier({ algorithm: OID_RSA_PSS, parameters: new Uint8Array(PSS_SHA384_PARAMS).buffer });
}

function serial(n: number): ArrayBuffer {
  if (n === 0) return new Uint8Array([0]).buffer;
  let hex = n.toString(16);
  if (hex.length % 2) hex = '0' + hex;
  if (parseInt(hex.slice(0, 2), 16) >= 0x80) hex = '00' + hex;
  return new Uint8Array(Buffer.from(hex, 'hex')).buffer;
}

/** AMD's subject/issuer DN shape with the TEST OU. */
function amdName(cn: string): Name {
  const rdn = (type: string, value: AttributeValue) => new RelativeDistinguishedName([new AttributeTypeAndValue({ type, value })]);
  return new Name([
    rdn('2.5.4.11', new AttributeValue({ utf8String: SIM_TEST_OU })),
    rdn('2.5.4.6', new AttributeValue({ printableString: 'US' })),
    rdn('2.5.4.7', new AttributeValue({ utf8String: 'Santa Clara' })),
    rdn('2.5.4.8', new AttributeValue({ utf8String: 'CA' })),
    rdn('2.5.4.10', new AttributeValue({ utf8String: 'Advanced Micro Devices' })),
    rdn('2.5.4.3', new AttributeValue({ utf8String: cn })),
  ]);
}

function spki(key: KeyObject): SubjectPublicKeyInfo {
  const der = crypto.createPublicKey(key).export({ type: 'spki', format: 'der' });
  return AsnConvert.parse(der, SubjectPublicKeyInfo);
}

function keyId(key: KeyObject): Buffer {
  const der = crypto.createPublicKey(key).export({ type: 'spki', format: 'der' });
  return crypto.createHash('sha1').update(der).digest();
}

function ext(extnID: string, value: ArrayBuffer | Uint8Array, critical = false): Extension {
  const bytes = value instanceof Uint8Array ? value : new Uint8Array(value);
  return new Extension({ extnID, critical, extnValue: new OctetString(bytes) });
}

/** DER INTEGER of a small non-negative number (minimal two's complement). */
function derInteger(v: number): Buffer {
  let hex = v.toString(16);
  if (hex.length % 2) hex = '0' + hex;
  if (parseInt(hex.slice(0, 2), 16) >= 0x80) hex = '00' + hex;
  const body = Buffer.from(hex, 'hex');
  return Buffer.concat([Buffer.from([0x02, body.length]), body]);
}

function derIa5(s: string): Buffer {
  const body = Buffer.from(s, 'ascii');
  if (body.length > 127) throw new RangeError('IA5String too long for this encoder');
  return Buffer.concat([Buffer.from([0x16, body.length]), body]);
}

function crlDp(url: string): Extension {
  const dp = new CRLDistributionPoints([
    new DistributionPoint({ distributionPoint: new DistributionPointName({ fullName: [new GeneralName({ uniformResourceIdentifier: url })] }) }),
  ]);
  return ext('2.5.29.31', AsnConvert.serialize(dp));
}

/** Sign a TBSCertificate with RSA-PSS/SHA-384 (deterministic salt) and return the certificate DER. */
function signRsa(tbs: TBSCertificate, signer: KeyObject, seed: string, label: string): Buffer {
  const tbsDer = Buffer.from(AsnConvert.serialize(tbs));
  const sig = rsaPssSignDeterministic(signer, 'sha384', tbsDer, seed, `snp-x509:${label}`);
  const cert = new Certificate({ tbsCertificate: tbs, signatureAlgorithm: pssAlgorithm(), signatureValue: new Uint8Array(sig).buffer });
  return Buffer.from(AsnConvert.serialize(cert));
}

function caCert(opts: {
  seed: string;
  product: SnpProduct;
  cn: string;
  serial: number;
  key: KeyObject;
  issuerCn: string;
  issuerKey: KeyObject;
  ark: boolean;
  crl: string;
}): Buffer {
  const extensions = new Extensions([
    ext('2.5.29.15', AsnConvert.serialize(new KeyUsage(opts.ark ? KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign : KeyUsageFlags.keyCertSign)), true),
    ext('2.5.29.19', AsnConvert.serialize(new BasicConstraints(opts.ark ? { cA: true } : { cA: true, pathLenConstraint: 0 })), true),
    ext('2.5.29.14', AsnConvert.serialize(new SubjectKeyIdentifier(new Uint8Array(keyId(opts.key))))),
  ]);
  if (!opts.ark) {
    extensions.push(
      ext('2.5.29.35', AsnConvert.serialize(new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(new Uint8Array(keyId(opts.issuerKey))) }))),
    );
  }
  extensions.push(crlDp(opts.crl));
  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: serial(opts.serial),
    signature: pssAlgorithm(),
    issuer: amdName(opts.issuerCn),
    validity: new Validity(ROOT_VALIDITY),
    subject: amdName(opts.cn),
    subjectPublicKeyInfo: spki(opts.key),
    extensions,
  });
  return signRsa(tbs, opts.issuerKey, opts.seed, `${opts.product}:${opts.cn}`);
}

/** The TEST ARK and ASK of a product as X.509 DER. */
export function mintRoots(seed: string, product: SnpProduct, arkKey: KeyObject, askKey: KeyObject): { ark: Buffer; ask: Buffer } {
  const arkCn = `ARK-${product}`;
  const s = SERIALS[product];
  const ark = caCert({ seed, product, cn: arkCn, serial: s.ark, key: arkKey, issuerCn: arkCn, issuerKey: arkKey, ark: true, crl: crlUrl(product, 'vcek') });
  const ask = caCert({
    seed,
    product,
    cn: `SEV-${product}`,
    serial: s.ask,
    key: askKey,
    issuerCn: arkCn,
    issuerKey: arkKey,
    ark: false,
    crl: crlUrl(product, 'vcek'),
  });
  return { ark, ask };
}

/** The TEST ASVK (VLEK intermediate) of a product, signed by the same ARK. */
export function mintAsvk(seed: string, product: SnpProduct, arkKey: KeyObject, asvkKey: KeyObject): Buffer {
  return caCert({
    seed,
    product,
    cn: `SEV-VLEK-${product}`,
    serial: SERIALS[product].asvk,
    key: asvkKey,
    issuerCn: `ARK-${product}`,
    issuerKey: arkKey,
    ark: false,
    crl: crlUrl(product, 'vlek'),
  });
}

/** The RSA-4096 TEST ASVK key (derived from the seed; a few seconds, so callers cache it). */
export function deriveAsvkKey(seed: string, product: SnpProduct): KeyObject {
  return deriveRsa(seed, `snp-asvk:${product}`, 4096).privateKey;
}

/** The SPL extensions of a TCB in AMD's struct layout (Turin: struct 1, fmcSPL, no spl4). */
function splExtensions(tcb: TcbVersion): Extension[] {
  const out: Extension[] = [];
  const turin = tcb.layout === 'turin';
  if (turin) out.push(ext(AmdOid.fmcSPL, derInteger(tcb.fmc ?? 0)));
  out.push(ext(AmdOid.blSPL, derInteger(tcb.bootloader)), ext(AmdOid.teeSPL, derInteger(tcb.tee)), ext(AmdOid.snpSPL, derInteger(tcb.snp)));
  if (!turin) out.push(ext(AmdOid.spl4, derInteger(0)));
  out.push(ext(AmdOid.spl5, derInteger(0)), ext(AmdOid.spl6, derInteger(0)), ext(AmdOid.spl7, derInteger(0)));
  out.push(ext(AmdOid.ucodeSPL, derInteger(tcb.microcode)));
  return out;
}

/** Inputs of a VCEK: the chip's hwID (64 bytes; Turin 8) and the REPORTED_TCB it is derived from. */
export interface VcekSpec {
  seed: string;
  product: SnpProduct;
  hwid: Buffer;
  reportedTcb: TcbVersion;
  askKey: KeyObject;
}

/** The label a VCEK private key is derived under: one key per (product, chip, REPORTED_TCB), as AMD derives it. */
export function vcekKeyLabel(product: SnpProduct, hwid: Buffer, tcbBytes: Buffer): string {
  return `snp-vcek:${product}:${hwid.toString('hex')}:${tcbBytes.toString('hex')}`;
}

/** A TEST VCEK certificate (DER) for `key`, with AMD's extensions for the spec's chip and TCB. */
export function mintVcek(spec: VcekSpec, key: KeyObject): Buffer {
  const turin = spec.product === 'Turin';
  const extensions = new Extensions([
    ext(AmdOid.structVersion, derInteger(turin ? 1 : 0)),
    ext(AmdOid.productName, derIa5(simProductName(spec.product))),
    ...splExtensions(spec.reportedTcb),
    ext(AmdOid.hwID, spec.hwid),
  ]);
  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: serial(0),
    signature: pssAlgorithm(),
    issuer: amdName(`SEV-${spec.product}`),
    validity: new Validity(VCEK_VALIDITY),
    subject: amdName('SEV-VCEK'),
    subjectPublicKeyInfo: spki(key),
    extensions,
  });
  return signRsa(tbs, spec.askKey, spec.seed, `vcek:${spec.hwid.toString('hex')}:${JSON.stringify(spec.reportedTcb)}`);
}

/** A TEST VLEK certificate (DER): csp_id instead of hwID, productName without stepping. */
export function mintVlek(opts: { seed: string; product: SnpProduct; reportedTcb: TcbVersion; asvkKey: KeyObject; cspId: string }, key: KeyObject): Buffer {
  const turin = opts.product === 'Turin';
  const extensions = new Extensions([
    ext(AmdOid.structVersion, derInteger(turin ? 1 : 0)),
    ext(AmdOid.productName, derIa5(opts.product)),
    ...splExtensions(opts.reportedTcb),
    ext(AmdOid.cspId, derIa5(opts.cspId)),
  ]);
  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: serial(0),
    signature: pssAlgorithm(),
    issuer: amdName(`SEV-VLEK-${opts.product}`),
    validity: new Validity(VLEK_VALIDITY),
    subject: amdName('SEV-VLEK'),
    subjectPublicKeyInfo: spki(key),
    extensions,
  });
  return signRsa(tbs, opts.asvkKey, opts.seed, `vlek:${JSON.stringify(opts.reportedTcb)}`);
}

/** The derived P-384 VCEK/VLEK private key for a label. */
export function deriveLeafKey(seed: string, label: string): KeyObject {
  return deriveP384(seed, label);
}

/** An empty CRL signed by the ARK (RSA-PSS/SHA-384), as KDS serves at /vcek/v1/<P>/crl; `revoked` lists serials. */
export function mintCrl(seed: string, product: SnpProduct, arkKey: KeyObject, revoked: number[] = []): Buffer {
  const tbs = new TBSCertList({
    version: Version.v2,
    signature: pssAlgorithm(),
    issuer: amdName(`ARK-${product}`),
    thisUpdate: new Time(new Date('2026-01-01T00:00:00Z')),
    nextUpdate: new Time(new Date('2049-01-01T00:00:00Z')),
    ...(revoked.length > 0
      ? { revokedCertificates: revoked.map((s) => ({ userCertificate: serial(s), revocationDate: new Time(new Date('2026-01-01T00:00:00Z')) })) }
      : {}),
  });
  const tbsDer = Buffer.from(AsnConvert.serialize(tbs));
  const sig = rsaPssSignDeterministic(arkKey, 'sha384', tbsDer, seed, `snp-crl:${product}:${revoked.join(',')}`);
  const crl = new CertificateList({ tbsCertList: tbs, signatureAlgorithm: pssAlgorithm(), signature: new Uint8Array(sig).buffer });
  return Buffer.from(AsnConvert.serialize(crl));
}

/** PEM of a DER certificate. */
export function toPem(der: Buffer, label = 'CERTIFICATE'): string {
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}
