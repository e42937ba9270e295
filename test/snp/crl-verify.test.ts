/**
 * CRL checks (no real AMD CRL is public, see the vectors' SOURCE.md): CRLs built here with asn1-x509,
 * RSASSA-PSS SHA-384 signed by a generated key that stands in for an ARK.
 */
import crypto from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier,
  AttributeTypeAndValue,
  AttributeValue,
  CertificateList,
  Name,
  RelativeDistinguishedName,
  RevokedCertificate,
  TBSCertList,
  Time,
  Version,
} from '@peculiar/asn1-x509';
import { describe, expect, it } from 'vitest';
import { crlFailure, parseCrl } from '../../lib/snp/crl.js';
import { builtinRoots } from '../../lib/snp/roots.js';
import type { AmdCert } from '../../lib/snp/x509.js';

// RSASSA-PSS, SHA-384, MGF1-SHA-384, salt 48 (AMD's parameters, as in every real AMD certificate).
const PSS_PARAMS = Buffer.from('3034a00f300d06096086480165030402020500a11c301a06092a864886f70d010108300d06096086480165030402020500a203020130', 'hex');
const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });

function buildCrl(opts: { issuer?: string; revoked?: Buffer[]; next?: Date; key?: crypto.KeyObject } = {}): Buffer {
  const alg = new AlgorithmIdentifier({
    algorithm: '1.2.840.113549.1.1.10',
    parameters: PSS_PARAMS.buffer.slice(PSS_PARAMS.byteOffset, PSS_PARAMS.byteOffset + PSS_PARAMS.length) as ArrayBuffer,
  });
  const issuer = new Name([
    new RelativeDistinguishedName([new AttributeTypeAndValue({ type: '2.5.4.3', value: new AttributeValue({ printableString: opts.issuer ?? 'ARK-Milan' }) })]),
  ]);
  const tbs = new TBSCertList({
    version: Version.v2,
    signature: alg,
    issuer,
    thisUpdate: new Time(new Date('2026-01-01T00:00:00Z')),
    nextUpdate: new Time(opts.next ?? new Date('2027-01-01T00:00:00Z')),
    ...(opts.revoked?.length
      ? {
          revokedCertificates: opts.revoked.map(
            (s) =>
              new RevokedCertificate({
                userCertificate: s.buffer.slice(s.byteOffset, s.byteOffset + s.length) as ArrayBuffer,
                revocationDate: new Time(new Date('2026-02-01T00:00:00Z')),
              }),
          ),
        }
      : {}),
  });
  const tbsDer = Buffer.from(AsnConvert.serialize(tbs));
  const sig = crypto.sign('sha384', tbsDer, { key: opts.key ?? privateKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 });
  return Buffer.from(
    AsnConvert.serialize(
      new CertificateList({
        tbsCertList: tbs,
        signatureAlgorithm: alg,
        signature: sig.buffer.slice(sig.byteOffset, sig.byteOffset + sig.length) as ArrayBuffer,
      }),
    ),
  );
}

const milan = builtinRoots('Milan');
/** The Milan ARK's identity with the generated key: crlFailure uses the ARK's CN and key. */
const ark: AmdCert = { ...milan.ark, publicKey };
const at = new Date('2026-06-01T00:00:00Z');

describe('CRL', () => {
  it('a CRL signed by the ARK that does not list the ASK clears it', () => {
    const crl = parseCrl(buildCrl({ revoked: [Buffer.from([0x01, 0x23])] }));
    expect(crl.issuerCn).toBe('ARK-Milan');
    expect(crl.revokedSerials).toEqual(['0123']);
    expect(crlFailure(crl, ark, [milan.ask], at)).toBeUndefined();
  });
  it('a revoked ASK (serial 0x10001) is refused', () => {
    const crl = parseCrl(buildCrl({ revoked: [Buffer.from([0x01, 0x00, 0x01])] }));
    expect(crlFailure(crl, ark, [milan.ask], at)).toMatch(/SEV-Milan, serial 0x010001\) is revoked/);
  });
  it('a CRL not signed by the ARK, issued by another CN, or stale is refused', () => {
    const other = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    expect(crlFailure(parseCrl(buildCrl({ key: other })), ark, [milan.ask], at)).toMatch(/does not verify/);
    expect(crlFailure(parseCrl(buildCrl()), milan.ark, [milan.ask], at)).toMatch(/does not verify/); // the real ARK did not sign it
    expect(crlFailure(parseCrl(buildCrl({ issuer: 'ARK-Genoa' })), ark, [milan.ask], at)).toMatch(/issued by ARK-Genoa/);
    expect(crlFailure(parseCrl(buildCrl({ next: new Date('2026-03-01T00:00:00Z') })), ark, [milan.ask], at)).toMatch(/stale/);
  });
});
