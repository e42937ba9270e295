/**
 * Numeric codes of the SEV certificate formats (AMD SEV API spec, chapter
 * "Certificates"; virtee/sev src/certs/sev/mod.rs and v1/algo.rs).
 */

/** `pubkey_usage` / `sig_usage` / CA `key_usage`. */
export const Usage = {
  ARK: 0x0000,
  ASK: 0x0013,
  INV: 0x1000,
  OCA: 0x1001,
  PEK: 0x1002,
  PDH: 0x1003,
  CEK: 0x1004,
} as const;
/** A key usage name, a key of Usage ('PEK', 'ASK', ...). */
export type UsageName = keyof typeof Usage;

/** `pubkey_algo` / `sig_algo`. */
export const Algo = {
  NONE: 0x0000,
  RSA_SHA256: 0x0001,
  ECDSA_SHA256: 0x0002,
  ECDH_SHA256: 0x0003,
  RSA_SHA384: 0x0101,
  ECDSA_SHA384: 0x0102,
  ECDH_SHA384: 0x0103,
} as const;
/** A key/signature algorithm name, a key of Algo ('ECDSA_SHA256', ...). */
export type AlgoName = keyof typeof Algo;

/** `curve` of an ECC public key. */
export const Curve = { P256: 1, P384: 2 } as const;

/** Size of one SEV certificate (PDH, PEK, OCA, CEK): 0x824 = 2084 bytes. */
export const SEV_CERT_SIZE = 0x824;
/** Bytes [0, 0x414) are what every signature in a SEV cert covers. */
export const SEV_CERT_BODY_SIZE = 0x414;
/** Byte offset of a SEV certificate's first signature slot (0x414). */
export const SEV_SIG1_OFFSET = 0x414;
/** Byte offset of a SEV certificate's second signature slot (0x61c). */
export const SEV_SIG2_OFFSET = 0x61c;
/** Size of one signature slot: usage u32, algo u32 and the 512-byte signature (520 bytes). */
export const SEV_SIG_SLOT_SIZE = 520;
/** Size of a SEV certificate's public-key union (1028 bytes). */
export const SEV_PUBKEY_SIZE = 1028;
/** ECC coordinates are 72-byte little-endian fields; P-384 uses the low 48. */
export const EC_COORD_SIZE = 72;
/** Size of a P-384 scalar or coordinate (48 bytes). */
export const P384_SIZE = 48;
/** Size of an AMD CA certificate's preamble, before pubexp, modulus and signature (0x40 = 64 bytes). */
export const CA_PREAMBLE_SIZE = 0x40;

/** The Usage name of a usage code, or its 0x-hex when unknown (for messages). */
export function usageName(u: number): string {
  for (const [k, v] of Object.entries(Usage)) if (v === u) return k;
  return `0x${u.toString(16)}`;
}

/** The Algo name of an algorithm code, or its 0x-hex when unknown (for messages). */
export function algoName(a: number): string {
  for (const [k, v] of Object.entries(Algo)) if (v === a) return k;
  return `0x${a.toString(16)}`;
}

/** The key type of a certificate algorithm. */
export type CertKeyType = 'rsa' | 'ec';
/** The digest of a certificate algorithm. */
export type CertHash = 'sha256' | 'sha384';

/** Key type and hash of an algorithm code; undefined for NONE / unknown codes. */
export function algoInfo(a: number): { type: CertKeyType; hash: CertHash; ecdh: boolean } | undefined {
  switch (a) {
    case Algo.RSA_SHA256:
      return { type: 'rsa', hash: 'sha256', ecdh: false };
    case Algo.RSA_SHA384:
      return { type: 'rsa', hash: 'sha384', ecdh: false };
    case Algo.ECDSA_SHA256:
      return { type: 'ec', hash: 'sha256', ecdh: false };
    case Algo.ECDSA_SHA384:
      return { type: 'ec', hash: 'sha384', ecdh: false };
    case Algo.ECDH_SHA256:
      return { type: 'ec', hash: 'sha256', ecdh: true };
    case Algo.ECDH_SHA384:
      return { type: 'ec', hash: 'sha384', ecdh: true };
    default:
      return undefined;
  }
}

/** Usages that may appear in a SEV (0x824-byte) certificate's pubkey_usage. */
export const SEV_CERT_USAGES: readonly number[] = [Usage.OCA, Usage.PEK, Usage.PDH, Usage.CEK];
/** Usages that make a signature slot non-empty (sig/mod.rs is_empty). */
export const SIGNER_USAGES: readonly number[] = [Usage.OCA, Usage.CEK, Usage.PEK, Usage.PDH, Usage.ARK, Usage.ASK];
/** The algorithm codes that make a signature (not ECDH); any other code in a slot marks it empty. */
export const SIGNATURE_ALGOS: readonly number[] = [Algo.RSA_SHA256, Algo.RSA_SHA384, Algo.ECDSA_SHA256, Algo.ECDSA_SHA384];
