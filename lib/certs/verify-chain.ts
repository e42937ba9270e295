/**
 * Whole-chain verification, as sevctl verify and the AMD SEV API spec do it:
 * ARK self-signed, ARK→ASK, ASK→CEK, OCA self-signed, OCA→PEK, CEK→PEK,
 * PEK→PDH. The result lists every link, so callers can show which one failed.
 */
import { asSevCert, sevCertDisplay, type SevCert } from './sev-cert.js';
import { caCertDisplay } from './ca-cert.js';
import { asCaChain, asSevChain, type CaChain, type SevChain } from './chain.js';
import { verifyAskCek, verifyCaLink, verifySevLink, type LinkCheck } from './verify.js';
import { builtinCaChain } from './builtin.js';
import { GENERATIONS, type Generation } from './generation.js';
import { Usage } from './constants.js';

/** The id of one link of a chain verification ('ask-cek': the ASK signs the CEK). */
export type LinkId = 'pek-pdh' | 'oca-pek' | 'oca-self' | 'cek-pek' | 'ask-cek' | 'ark-ask' | 'ark-self';

/** One verified link: which certificate signs which, and the outcome. */
export interface LinkResult extends LinkCheck {
  id: LinkId;
  signer: 'PEK' | 'OCA' | 'CEK' | 'ASK' | 'ARK';
  subject: 'PDH' | 'PEK' | 'OCA' | 'CEK' | 'ASK' | 'ARK';
}

/** The outcome of verifyChain: every link in sevctl's order, the failed ones, and which CA chain was used. */
export interface ChainVerification {
  ok: boolean;
  /** Every link, in sevctl's print order: PEK→PDH, OCA→PEK, OCA self, CEK→PEK, ASK→CEK, ARK→ASK, ARK self. */
  links: LinkResult[];
  /** The links that failed (empty when ok). */
  failed: LinkResult[];
  /** The generation whose built-in roots were used (undefined with an explicit CA chain or when none matched). */
  generation?: Generation;
  /** Where the CA chain came from. */
  caSource: 'given' | 'builtin' | 'none';
  sev: SevChain;
  ca?: CaChain;
  /** sevctl display strings (usage, key description, fingerprint). */
  display: { pdh: string; pek: string; oca: string; cek: string; ask?: string; ark?: string };
}

/**
 * What verifyChain checks: the SEV chain, and optionally the CA chain, a replacement OCA, or the generation
 * whose built-in roots to use.
 */
export interface VerifyChainOptions {
  /** The SEV chain (decoded, or PDH‖PEK‖OCA‖CEK bytes). */
  sev: SevChain | Uint8Array;
  /** ASK‖ARK; defaults to the built-in roots of the generation that signs the CEK. */
  ca?: CaChain | Uint8Array;
  /** Replaces the chain's OCA (sevctl verify --oca). */
  oca?: SevCert | Uint8Array;
  /** Use this generation's built-in roots instead of detecting it. */
  generation?: Generation;
}

/** The first generation whose built-in ASK signs this CEK, or undefined. */
export function detectGeneration(cek: SevCert | Uint8Array): Generation | undefined {
  const c = asSevCert(cek, { name: 'CEK', usage: Usage.CEK });
  for (const g of GENERATIONS) if (verifyAskCek(builtinCaChain(g).ask, c).ok) return g;
  return undefined;
}

/**
 * Verifies every link of a SEV chain up to an ARK (the given CA chain, else the built-in roots of the generation
 * that signs the CEK); a bad signature is a failed link in the result, malformed input throws CertificateError.
 * Whether the ARK is a trusted root is the caller's decision.
 */
export function verifyChain(opts: VerifyChainOptions): ChainVerification {
  const sev = asSevChain(opts.sev);
  if (opts.oca !== undefined) sev.oca = asSevCert(opts.oca, { name: 'OCA', usage: Usage.OCA });
  let ca: CaChain | undefined;
  let generation: Generation | undefined;
  let caSource: ChainVerification['caSource'] = 'none';
  if (opts.ca !== undefined) {
    ca = asCaChain(opts.ca);
    caSource = 'given';
  } else {
    generation = opts.generation ?? detectGeneration(sev.cek);
    if (generation) {
      ca = builtinCaChain(generation);
      caSource = 'builtin';
    }
  }
  const noCa: LinkCheck = { ok: false, reason: 'no built-in AMD ASK (naples, rome, milan, genoa, turin) signs this CEK; pass the CA chain (ASK‖ARK) explicitly' };
  const link = (id: LinkId, signer: LinkResult['signer'], subject: LinkResult['subject'], r: LinkCheck): LinkResult => ({ id, signer, subject, ...r });
  const links: LinkResult[] = [
    link('pek-pdh', 'PEK', 'PDH', verifySevLink(sev.pek, sev.pdh)),
    link('oca-pek', 'OCA', 'PEK', verifySevLink(sev.oca, sev.pek)),
    link('oca-self', 'OCA', 'OCA', verifySevLink(sev.oca, sev.oca)),
    link('cek-pek', 'CEK', 'PEK', verifySevLink(sev.cek, sev.pek)),
    link('ask-cek', 'ASK', 'CEK', ca ? verifyAskCek(ca.ask, sev.cek) : noCa),
    link('ark-ask', 'ARK', 'ASK', ca ? verifyCaLink(ca.ark, ca.ask) : noCa),
    link('ark-self', 'ARK', 'ARK', ca ? verifyCaLink(ca.ark, ca.ark) : noCa),
  ];
  const failed = links.filter((l) => !l.ok);
  const display: ChainVerification['display'] = {
    pdh: sevCertDisplay(sev.pdh),
    pek: sevCertDisplay(sev.pek),
    oca: sevCertDisplay(sev.oca),
    cek: sevCertDisplay(sev.cek),
  };
  if (ca) {
    display.ask = caCertDisplay(ca.ask);
    display.ark = caCertDisplay(ca.ark);
  }
  const res: ChainVerification = { ok: failed.length === 0, links, failed, caSource, sev, display };
  if (generation) res.generation = generation;
  if (ca) res.ca = ca;
  return res;
}
