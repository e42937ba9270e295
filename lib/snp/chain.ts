/**
 * Certificate links of the SNP chain: RSASSA-PSS (SHA-384, MGF1-SHA-384, salt
 * 48) signatures checked with node:crypto over the exact tbsCertificate bytes,
 * and validity at a caller-chosen time. A link's result is memoised by the two
 * certificates' DER, so a verifier with a cached chain pays one RSA verify per
 * distinct link per process.
 */
import { constants, createHash, verify as cryptoVerify } from 'node:crypto';
import { isAmdPss, OID_RSASSA_PSS } from './x509.js';
import type { AmdCert, PssParams } from './x509.js';

const linkCache = new Map<string, string | null>();
const LINK_CACHE_MAX = 256;

function key(child: AmdCert, issuer: AmdCert): string {
  return createHash('sha256').update(child.der).update(issuer.der).digest('hex');
}

/**
 * Why `child` is not signed by `issuer` under AMD's scheme, or undefined when it
 * is: the signature algorithm must be RSASSA-PSS with AMD's parameters, the
 * issuer CN must match, and the signature must verify under the issuer's key.
 */
export function linkFailure(child: AmdCert, issuer: AmdCert): string | undefined {
  const k = key(child, issuer);
  const hit = linkCache.get(k);
  if (hit !== undefined) return hit ?? undefined;
  const why = computeLink(child, issuer);
  if (linkCache.size >= LINK_CACHE_MAX) linkCache.delete(linkCache.keys().next().value!);
  linkCache.set(k, why ?? null);
  return why;
}

function computeLink(child: AmdCert, issuer: AmdCert): string | undefined {
  if (child.issuerCn !== issuer.subjectCn) return `${child.name} names issuer ${child.issuerCn || '(none)'}, not ${issuer.subjectCn}`;
  return amdSignatureFailure(child, issuer);
}

/** The signed parts of a certificate or CRL. */
export interface AmdSigned {
  name: string;
  tbs: Buffer;
  signatureAlgorithm: string;
  pss: PssParams | undefined;
  signature: Buffer;
}

/** Why `signed` (a certificate or CRL) does not carry a valid AMD RSASSA-PSS signature by `issuer`, or undefined when it does. Not memoised. */
export function amdSignatureFailure(signed: AmdSigned, issuer: AmdCert): string | undefined {
  if (signed.signatureAlgorithm !== OID_RSASSA_PSS) return `${signed.name} is not signed with RSASSA-PSS (algorithm ${signed.signatureAlgorithm})`;
  if (!isAmdPss(signed.pss)) return `${signed.name}'s RSASSA-PSS parameters are not SHA-384/MGF1-SHA-384/salt 48`;
  const kt = issuer.publicKey.asymmetricKeyType;
  if (kt !== 'rsa' && kt !== 'rsa-pss') return `${issuer.name}'s key is ${kt ?? 'unknown'}, not RSA`;
  let ok = false;
  try {
    ok = cryptoVerify('sha384', signed.tbs, { key: issuer.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 }, signed.signature);
  } catch {
    ok = false;
  }
  return ok ? undefined : `${signed.name}'s signature does not verify under ${issuer.name} (${issuer.subjectCn})`;
}

/** Why a certificate is not valid at `at`, or undefined when notBefore ≤ at ≤ notAfter. */
export function validityFailure(c: AmdCert, at: Date): string | undefined {
  if (at < c.notBefore) return `${c.name} (${c.subjectCn}) is not valid before ${c.notBefore.toISOString()}`;
  if (at > c.notAfter) return `${c.name} (${c.subjectCn}) expired ${c.notAfter.toISOString()}`;
  return undefined;
}
