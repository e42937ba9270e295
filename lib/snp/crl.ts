/**
 * AMD's certificate revocation lists (`/vcek|vlek/v1/<P>/crl`, DER, signed by
 * the product's ARK). Per AMD, VCEKs are superseded by TCB versions rather
 * than revoked, so what the CRL protects against is a revoked ASK/ASVK.
 */
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificateList } from '@peculiar/asn1-x509';
import { amdSignatureFailure } from './chain.js';
import { readTlv } from './der.js';
import { SnpCertError } from './errors.js';
import { cn, OID_RSASSA_PSS, parsePss } from './x509.js';
import type { AmdCert, PssParams } from './x509.js';

/** A parsed CRL. */
export interface AmdCrl {
  name: string;
  der: Buffer;
  tbs: Buffer;
  issuerCn: string;
  thisUpdate: Date;
  nextUpdate: Date | undefined;
  /** Serial numbers listed, big-endian bytes as encoded, hex. */
  revokedSerials: string[];
  signatureAlgorithm: string;
  pss: PssParams | undefined;
  signature: Buffer;
}

/** Parse a DER CRL. Throws SnpCertError (cert `CRL`) when it is not one. */
export function parseCrl(der: Uint8Array, name = 'CRL'): AmdCrl {
  const b = Buffer.from(der.buffer, der.byteOffset, der.byteLength);
  let l: CertificateList;
  try {
    if (readTlv(b, 0, [name, 'CRL']).end !== b.length) throw new SnpCertError(name, 'trailing bytes after the CRL', { code: 'ERR_SNP_CERT_FORMAT' });
    l = AsnConvert.parse(b, CertificateList);
  } catch (e) {
    if (e instanceof SnpCertError) throw e;
    throw new SnpCertError(name, `not a DER CRL (${e instanceof Error ? e.message : String(e)})`, { cause: e, code: 'ERR_SNP_CERT_FORMAT' });
  }
  if (!l.tbsCertListRaw) throw new SnpCertError(name, 'no tbsCertList bytes', { code: 'ERR_SNP_CERT_FORMAT' });
  const t = l.tbsCertList;
  const alg = l.signatureAlgorithm.algorithm;
  return {
    name,
    der: Buffer.from(b),
    tbs: Buffer.from(l.tbsCertListRaw),
    issuerCn: cn(t.issuer),
    thisUpdate: t.thisUpdate.getTime(),
    nextUpdate: t.nextUpdate?.getTime(),
    revokedSerials: (t.revokedCertificates ?? []).map((r) => normSerial(Buffer.from(r.userCertificate))),
    signatureAlgorithm: alg,
    pss: alg === OID_RSASSA_PSS ? parsePss(l.signatureAlgorithm.parameters, name) : undefined,
    signature: Buffer.from(l.signature),
  };
}

/** Serial bytes as minimal hex (leading zero bytes dropped) so two encodings compare equal. */
function normSerial(b: Buffer): string {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i).toString('hex');
}

/**
 * Why the CRL does not clear `certs` at time `at`, or undefined when it does: it must be
 * issued and signed by `ark`, be current (thisUpdate ≤ at ≤ nextUpdate) and not list any of them.
 */
export function crlFailure(crl: AmdCrl, ark: AmdCert, certs: AmdCert[], at: Date): string | undefined {
  if (crl.issuerCn !== ark.subjectCn) return `the CRL is issued by ${crl.issuerCn || '(none)'}, not ${ark.subjectCn}`;
  const sig = amdSignatureFailure(crl, ark);
  if (sig) return sig;
  if (at < crl.thisUpdate) return `the CRL is not valid before ${crl.thisUpdate.toISOString()}`;
  if (crl.nextUpdate && at > crl.nextUpdate) return `the CRL is stale (next update was due ${crl.nextUpdate.toISOString()})`;
  for (const c of certs)
    if (crl.revokedSerials.includes(normSerial(c.serial))) return `${c.name} (${c.subjectCn}, serial 0x${normSerial(c.serial)}) is revoked`;
  return undefined;
}
