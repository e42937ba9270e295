/**
 * Chain files in sevctl's layouts: SEV chain PDH‖PEK‖OCA‖CEK (8336 bytes),
 * CA chain ASK‖ARK, full chain PDH‖PEK‖OCA‖CEK‖ASK‖ARK.
 */
import { SEV_CERT_SIZE, Usage } from './constants.js';
import { asSevCert, decodeSevCert, encodeSevCert, type SevCert } from './sev-cert.js';
import { asCaCert, decodeCaCertAt, encodeCaCert, type CaCert } from './ca-cert.js';
import { CertificateError } from './errors.js';

/** The platform's four SEV certificates, as the firmware exports them. */
export interface SevChain {
  pdh: SevCert;
  pek: SevCert;
  oca: SevCert;
  cek: SevCert;
}
/** AMD's CA certificates for one generation: the ASK (signs CEKs) and the ARK (the root). */
export interface CaChain {
  ask: CaCert;
  ark: CaCert;
}
/** A SEV chain with the CA chain that signs its CEK. */
export interface FullChain {
  sev: SevChain;
  ca: CaChain;
}

/** Size of a PDH‖PEK‖OCA‖CEK file: 4 * 0x824 = 8336 bytes. */
export const SEV_CHAIN_SIZE = 4 * SEV_CERT_SIZE;

function prefix(file: string | undefined, what: string): string {
  return file ? `${file}: ${what}` : what;
}

/** Decode PDH‖PEK‖OCA‖CEK; bytes after the four certificates are ignored, as sevctl does. */
export function decodeSevChain(buf: Uint8Array, file?: string): SevChain {
  if (buf.length < SEV_CHAIN_SIZE) {
    throw new CertificateError(
      'ERR_CERT_DECODE',
      `${file ?? 'SEV chain'}: size is ${buf.length} bytes, a SEV chain (PDH‖PEK‖OCA‖CEK) needs ${SEV_CHAIN_SIZE}`,
      { cert: file ?? 'SEV chain', field: 'size' },
    );
  }
  const at = (i: number, usage: number, name: string) =>
    decodeSevCert(buf.subarray(i * SEV_CERT_SIZE, (i + 1) * SEV_CERT_SIZE), { name: prefix(file, name), usage });
  return { pdh: at(0, Usage.PDH, 'PDH'), pek: at(1, Usage.PEK, 'PEK'), oca: at(2, Usage.OCA, 'OCA'), cek: at(3, Usage.CEK, 'CEK') };
}

/** A SEV chain from bytes or objects; either way each position must hold its role (PDH, PEK, OCA, CEK). */
export function asSevChain(c: SevChain | Uint8Array, file?: string): SevChain {
  if (c instanceof Uint8Array) return decodeSevChain(c, file);
  const at = (cert: SevCert, usage: number, name: string) => asSevCert(cert, { name: prefix(file, name), usage });
  return { pdh: at(c.pdh, Usage.PDH, 'PDH'), pek: at(c.pek, Usage.PEK, 'PEK'), oca: at(c.oca, Usage.OCA, 'OCA'), cek: at(c.cek, Usage.CEK, 'CEK') };
}

/** PDH‖PEK‖OCA‖CEK bytes (sevctl's SEV chain file); throws CertificateError (ERR_CERT_ENCODE). */
export function encodeSevChain(c: SevChain): Buffer {
  return Buffer.concat([encodeSevCert(c.pdh), encodeSevCert(c.pek), encodeSevCert(c.oca), encodeSevCert(c.cek)]);
}

/** Decode ASK‖ARK and return the chain plus the bytes it used. */
export function decodeCaChainAt(buf: Uint8Array, file?: string): { chain: CaChain; length: number } {
  const ask = decodeCaCertAt(buf, { name: prefix(file, 'ASK'), usage: Usage.ASK, allowTrailing: true });
  const ark = decodeCaCertAt(buf.subarray(ask.length), { name: prefix(file, 'ARK'), usage: Usage.ARK, allowTrailing: true });
  return { chain: { ask: ask.cert, ark: ark.cert }, length: ask.length + ark.length };
}

/** Decodes ASK‖ARK (the `--ca` file), each checked for its usage; throws CertificateError (ERR_CERT_DECODE). */
export function decodeCaChain(buf: Uint8Array, file?: string): CaChain {
  return decodeCaChainAt(buf, file).chain;
}

/** A CA chain from bytes or objects; either way the ASK must be an ASK and the ARK an ARK. */
export function asCaChain(c: CaChain | Uint8Array, file?: string): CaChain {
  if (c instanceof Uint8Array) return decodeCaChain(c, file);
  return { ask: asCaCert(c.ask, { name: prefix(file, 'ASK'), usage: Usage.ASK }), ark: asCaCert(c.ark, { name: prefix(file, 'ARK'), usage: Usage.ARK }) };
}

/** ASK‖ARK bytes (sevctl's CA chain file). */
export function encodeCaChain(c: CaChain): Buffer {
  return Buffer.concat([encodeCaCert(c.ask), encodeCaCert(c.ark)]);
}

/** Decodes PDH‖PEK‖OCA‖CEK‖ASK‖ARK exactly (no trailing bytes); throws CertificateError (ERR_CERT_DECODE). */
export function decodeFullChain(buf: Uint8Array, file?: string): FullChain {
  const sev = decodeSevChain(buf, file);
  if (buf.length <= SEV_CHAIN_SIZE) {
    throw new CertificateError('ERR_CERT_DECODE', `${file ?? 'full chain'}: ends after the CEK; a full chain also needs ASK‖ARK`, {
      cert: file ?? 'full chain',
      field: 'size',
    });
  }
  const { chain, length } = decodeCaChainAt(buf.subarray(SEV_CHAIN_SIZE), file);
  if (SEV_CHAIN_SIZE + length !== buf.length) {
    throw new CertificateError('ERR_CERT_DECODE', `${file ?? 'full chain'}: ${buf.length - SEV_CHAIN_SIZE - length} unexpected bytes after the ARK`, {
      cert: file ?? 'full chain',
      field: 'size',
    });
  }
  return { sev, ca: chain };
}

/** PDH‖PEK‖OCA‖CEK‖ASK‖ARK bytes (sevctl's full chain file). */
export function encodeFullChain(c: FullChain): Buffer {
  return Buffer.concat([encodeSevChain(c.sev), encodeCaChain(c.ca)]);
}
