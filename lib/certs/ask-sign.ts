/** The ASK signing a CEK: RSA-PSS into a SEV certificate's signature slot, as AMD's KDS CEKs are. */
import type { KeyObject } from 'node:crypto';
import { Algo, Usage } from './constants.js';
import { asCaCert, type CaCert } from './ca-cert.js';
import { signSevCert, type SevCert, type SlotChoice } from './sev-cert.js';

/**
 * Sign `cek` with the ASK's private key: slot usage ASK, algorithm RSA_SHA256
 * for a 2048-bit ASK (Naples) or RSA_SHA384 for 4096-bit (Rome and later).
 */
export function signCekWithAsk(cek: SevCert | Uint8Array, ask: CaCert | Uint8Array, askPrivateKey: KeyObject, slot: SlotChoice = 1): SevCert {
  const a = asCaCert(ask);
  return signSevCert(cek, slot, {
    signerUsage: Usage.ASK,
    signerAlgo: a.modulusSize === 2048 ? Algo.RSA_SHA256 : Algo.RSA_SHA384,
    privateKey: askPrivateKey,
  });
}
