/**
 * The one rule for which ASK‖ARK a verifier trusts: an explicit CA chain, else the built-in AMD roots of a
 * named generation, else those of the generation whose ASK signs the CEK, else (only when the caller offers
 * one, e.g. the CLI inside `sevkit sim`) a TEST CA whose ASK signs the CEK. A chain's own ASK/ARK are never
 * an anchor: verifyTrustedChain (verify-chain.ts) requires them to equal the one chosen here.
 */
import { asSevCert, type SevCert } from './sev-cert.js';
import { asCaChain, type CaChain } from './chain.js';
import { verifyAskCek } from './verify.js';
import { builtinCaChain } from './builtin.js';
import { GENERATIONS, type Generation } from './generation.js';
import { CertificateError } from './errors.js';
import { Usage } from './constants.js';

/** Key ids of the simulator's TEST ARK/ASK start with these bytes (lib/sim/keys.ts TEST_ROOT_ID_PREFIX). */
export const TEST_ROOT_KEY_ID_PREFIX = 'SIMTEST-';

/** Whether the ASK or the ARK of `ca` is a sevkit TEST root (key id `SIMTEST-…`): a chain verified against it proves nothing about AMD hardware. */
export function isTestRoot(ca: { ask: { keyId: Uint8Array }; ark: { keyId: Uint8Array } }): boolean {
  const prefix = Buffer.from(TEST_ROOT_KEY_ID_PREFIX, 'ascii');
  return [ca.ask, ca.ark].some((c) => Buffer.from(c.keyId).subarray(0, prefix.length).equals(prefix));
}

/** The first generation whose built-in ASK signs this CEK, or undefined. Throws CertificateError when `cek` is not a CEK. */
export function detectGeneration(cek: SevCert | Uint8Array): Generation | undefined {
  const c = asSevCert(cek, { name: 'CEK', usage: Usage.CEK });
  for (const g of GENERATIONS) if (verifyAskCek(builtinCaChain(g).ask, c).ok) return g;
  return undefined;
}

/** What resolveTrustAnchor chooses from: at most one of `ca` and `generation`; `cek` (and `testCa`) when neither is given. */
export interface TrustAnchorOptions {
  /** Trust exactly this ASK‖ARK (bytes or decoded). */
  ca?: CaChain | Uint8Array | undefined;
  /** Trust the built-in AMD roots of this generation. */
  generation?: Generation | undefined;
  /** The chain's CEK, to find the built-in roots whose ASK signs it when neither `ca` nor `generation` is given. */
  cek?: SevCert | Uint8Array | undefined;
  /**
   * A TEST CA (the simulator's, lib/sim simulatorCaChain) to trust when no built-in AMD ASK signs the CEK and its
   * ASK does. Never used when `ca` or `generation` is given. The library never looks for one itself.
   */
  testCa?: CaChain | undefined;
}

/** The chosen anchor and how it was chosen. */
export interface TrustAnchor {
  /** The ASK‖ARK to verify against. */
  ca: CaChain;
  /** 'ca': the given chain; 'generation': the named generation's built-in roots; 'detected': the built-in roots whose ASK signs the CEK; 'test': the given TEST CA. */
  chosenBy: 'ca' | 'generation' | 'detected' | 'test';
  /** The generation of built-in roots ('generation' and 'detected' only). */
  generation?: Generation;
  /** Whether the anchor is a sevkit TEST root (isTestRoot): true for 'test', and for a given CA that is one. */
  testRoot: boolean;
  /** A short description for messages: "the given CA chain", "built-in AMD milan roots", "TEST roots (the simulator's), not AMD". */
  description: string;
}

/**
 * Chooses the trust anchor (module comment has the order). Returns undefined when nothing applies (no `ca`,
 * no `generation`, and neither a built-in ASK nor the TEST CA's signs the CEK, or no CEK was given). Throws
 * CertificateError: ERR_CERT_ANCHOR when both `ca` and `generation` are given, and the codec's errors for a
 * malformed `ca` or `cek`.
 */
export function resolveTrustAnchor(o: TrustAnchorOptions): TrustAnchor | undefined {
  if (o.ca !== undefined && o.generation !== undefined) {
    throw new CertificateError('ERR_CERT_ANCHOR', 'give either a CA chain or a generation to trust, not both', { field: 'anchor' });
  }
  if (o.ca !== undefined) {
    const ca = asCaChain(o.ca);
    return { ca, chosenBy: 'ca', testRoot: isTestRoot(ca), description: 'the given CA chain' };
  }
  if (o.generation !== undefined) return builtin(o.generation, 'generation');
  if (o.cek === undefined) return undefined;
  const cek = asSevCert(o.cek, { name: 'CEK', usage: Usage.CEK });
  const g = detectGeneration(cek);
  if (g) return builtin(g, 'detected');
  if (o.testCa && verifyAskCek(o.testCa.ask, cek).ok)
    return { ca: o.testCa, chosenBy: 'test', testRoot: true, description: "TEST roots (the simulator's), not AMD" };
  return undefined;
}

function builtin(generation: Generation, chosenBy: 'generation' | 'detected'): TrustAnchor {
  const ca = builtinCaChain(generation);
  return { ca, chosenBy, generation, testRoot: isTestRoot(ca), description: `built-in AMD ${generation} roots` };
}
