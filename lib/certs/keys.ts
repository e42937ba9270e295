/** OCA private-key files: written as sevctl does (SEC1 DER), read from any DER/PEM EC key. */
import crypto, { type KeyObject } from 'node:crypto';
import { CertificateError } from './errors.js';
import { sevCertPublicKey, type SevCert } from './sev-cert.js';
import { usageName } from './constants.js';

/** SEC1 ("traditional") EC private key DER, as OpenSSL's private_key_to_der writes it. */
export function encodeOcaKey(key: KeyObject): Buffer {
  return key.export({ format: 'der', type: 'sec1' });
}

/** Parse a private key in PEM or DER (SEC1 or PKCS#8) and check it belongs to `cert`. */
export function decodePrivateKeyFor(data: Buffer, cert: SevCert, file = 'key'): KeyObject {
  let key: KeyObject | undefined;
  const text = data.subarray(0, 64).toString('latin1');
  const attempts: crypto.PrivateKeyInput[] = text.includes('-----BEGIN')
    ? [{ key: data, format: 'pem' }]
    : [
        { key: data, format: 'der', type: 'sec1' },
        { key: data, format: 'der', type: 'pkcs8' },
      ];
  for (const a of attempts) {
    try {
      key = crypto.createPrivateKey(a);
      break;
    } catch {
      /* try the next encoding */
    }
  }
  if (!key) throw new CertificateError('ERR_CERT_KEY', `${file}: not a DER or PEM private key`, { cert: file, field: 'key' });
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'secp384r1') {
    throw new CertificateError('ERR_CERT_KEY', `${file}: not a P-384 EC private key`, { cert: file, field: 'key' });
  }
  const want = sevCertPublicKey(cert).export({ format: 'jwk' });
  const got = crypto.createPublicKey(key).export({ format: 'jwk' });
  if (want.x !== got.x || want.y !== got.y) {
    throw new CertificateError('ERR_CERT_KEY', `${file}: private key does not match the ${usageName(cert.usage)} certificate's public key`, {
      cert: file,
      field: 'key',
    });
  }
  return key;
}
