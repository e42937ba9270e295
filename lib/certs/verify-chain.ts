/**
 * Whole-chain verification, as sevctl verify and the AMD SEV API spec do it:
 * ARK self-signed, ARK→ASK, ASK→CEK, OCA self-signed, OCA→PEK, CEK→PEK,
 * PEK→PDH. The result lists every link, so callers can show which one failed.
 */
import { asSevCert, sevCertDisplay, type SevCert } from './sev-cert.js';
import { caCertDisplay } from './ca-cert.js';
import { asSevChain, decodeFullChain, decodeSevChain, encodeCaChain, SEV_CHAIN_SIZE, type CaChain, type FullChain, type SevChain } from './chain.js';
import { verifyAskCek, verifyCaLink, verifySevLink, type LinkCheck } from './verify.js';
import type { Generation } from './generation.js';
import { Usage } from './constants.js';
import { CertificateError } from './errors.js';
import { resolveTrustAnchor, type TrustAnchor, type TrustAnchorOptions } from './trust-anchor.js';

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

/**
 * Verifies every link of a SEV chain up to an ARK (the given CA chain, else the built-in roots of the generation
 * that signs the CEK); a bad signature is a failed link in the result, malformed input throws CertificateError.
 * Whether the ARK is a trusted root is the caller's decision.
 */
export function verifyChain(opts: VerifyChainOptions): ChainVerification {
  const sev = asSevChain(opts.sev);
  if (opts.oca !== undefined) sev.oca = asSevCert(opts.oca, { name: 'OCA', usage: Usage.OCA });
  // The anchor rule is trust-anchor.ts's; an explicit CA wins over a generation here, as documented above.
  const anchor = resolveTrustAnchor(opts.ca !== undefined ? { ca: opts.ca } : { generation: opts.generation, cek: sev.cek });
  const ca: CaChain | undefined = anchor?.ca;
  const generation: Generation | undefined = anchor?.generation;
  const caSource: ChainVerification['caSource'] = anchor ? (anchor.chosenBy === 'ca' ? 'given' : 'builtin') : 'none';
  const noCa: LinkCheck = {
    ok: false,
    reason: 'no built-in AMD ASK (naples, rome, milan, genoa, turin) signs this CEK; pass the CA chain (ASK‖ARK) explicitly',
  };
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

/** What verifyTrustedChain checks: a SEV or full chain, the anchor choice (trust-anchor.ts), optionally a replacement OCA. */
export interface VerifyTrustedChainOptions extends Omit<TrustAnchorOptions, 'cek'> {
  /** PDH‖PEK‖OCA‖CEK, or a full chain PDH‖PEK‖OCA‖CEK‖ASK‖ARK (bytes: more than 4 certificates' worth is read as a full chain). */
  chain: SevChain | FullChain | Uint8Array;
  /** Replaces the chain's OCA (sevctl verify --oca). */
  oca?: SevCert | Uint8Array;
}

/** verifyChain's result plus the anchor that was trusted (undefined when none applied: then every CA link failed). */
export interface TrustedChainVerification extends ChainVerification {
  anchor: TrustAnchor | undefined;
}

/**
 * Verifies a chain against the anchor resolveTrustAnchor chooses (CA chain, generation, the CEK's built-in
 * roots, or the offered TEST CA). The ASK/ARK a full chain carries are never trusted by themselves: they must
 * equal the anchor byte for byte. A bad signature, or no anchor at all, is a failed link in the result (ok
 * false). Throws CertificateError: ERR_CHAIN_UNTRUSTED when a full chain's ASK/ARK are not the anchor,
 * ERR_CERT_ANCHOR for both `ca` and `generation`, and the codec's errors for malformed input.
 */
export function verifyTrustedChain(o: VerifyTrustedChainOptions): TrustedChainVerification {
  let sev: SevChain;
  let own: CaChain | undefined;
  if (o.chain instanceof Uint8Array) {
    if (o.chain.length > SEV_CHAIN_SIZE) ({ sev, ca: own } = decodeFullChain(o.chain));
    else sev = decodeSevChain(o.chain);
  } else if ('sev' in o.chain) {
    ({ sev, ca: own } = o.chain);
  } else {
    sev = o.chain;
  }
  const anchor = resolveTrustAnchor({ ca: o.ca, generation: o.generation, cek: sev.cek, testCa: o.testCa });
  if (own && anchor && !encodeCaChain(own).equals(encodeCaChain(anchor.ca))) {
    throw new CertificateError('ERR_CHAIN_UNTRUSTED', `the chain's ASK/ARK are not the trusted roots (${anchor.description}); refusing`, {
      cert: 'ASK/ARK',
      field: 'anchor',
    });
  }
  const base = anchor?.generation !== undefined ? { generation: anchor.generation } : anchor ? { ca: anchor.ca } : {};
  return { ...verifyChain({ sev, ...base, ...(o.oca !== undefined ? { oca: o.oca } : {}) }), anchor };
}
