/**
 * Getting a verifiable chain for a platform: the firmware exports PDH, PEK,
 * OCA and CEK; the CEK AMD signed comes from KDS unless the firmware's CEK
 * already carries a valid ASK signature (the simulator's does). The CA chain
 * comes from an explicit file, the simulator's state directory, or the
 * built-in AMD roots of the CEK's generation.
 */
import { Usage } from './constants.js';
import { decodeSevCert, type SevCert } from './sev-cert.js';
import { asCaChain, encodeFullChain, encodeSevChain, type CaChain, type FullChain, type SevChain } from './chain.js';
import { verifyAskCek } from './verify.js';
import { detectGeneration } from './trust-anchor.js';
import { builtinCaChain } from './builtin.js';
import type { Generation } from './generation.js';
import { fetchCek, type KdsOptions } from './kds.js';
import { CertificateError } from './errors.js';

/** What certs needs from a platform (lib/platform's SevPlatform satisfies it). */
export interface CertPlatform {
  exportCerts(): Promise<{ pdh: Buffer; pek: Buffer; oca: Buffer; cek: Buffer }>;
  getId(): Promise<Buffer>;
}

/**
 * Where platformSevChain / fullChainFor get the CA chain and the CEK: an explicit CA, the simulator's state dir,
 * KDS options.
 */
export interface PlatformChainOptions {
  /** Explicit CA chain (ASK‖ARK) to use for the full chain. */
  ca?: CaChain | Uint8Array;
  /** A TEST CA chain to try before the built-in AMD roots: the simulator's (lib/sim simulatorCaChain); the CLI passes it inside `sevkit sim`. */
  testCa?: CaChain;
  /** KDS options (fetch, cache, offline, ...). */
  kds?: KdsOptions;
}

/** The platform's SEV chain with an ASK-signed CEK, and where that CEK came from. */
export interface PlatformSevChain {
  sev: SevChain;
  /** 'firmware' when the exported CEK already has a valid ASK signature, 'kds' when replaced by AMD's. */
  cekSource: 'firmware' | 'kds';
}

function decodeExport(certs: { pdh: Buffer; pek: Buffer; oca: Buffer; cek: Buffer }): SevChain {
  return {
    pdh: decodeSevCert(certs.pdh, { name: 'platform PDH', usage: Usage.PDH }),
    pek: decodeSevCert(certs.pek, { name: 'platform PEK', usage: Usage.PEK }),
    oca: decodeSevCert(certs.oca, { name: 'platform OCA', usage: Usage.OCA }),
    cek: decodeSevCert(certs.cek, { name: 'platform CEK', usage: Usage.CEK }),
  };
}

interface SigningCa {
  ca: CaChain;
  caSource: PlatformFullChain['caSource'];
  generation?: Generation;
}

/**
 * The CA chain whose ASK signs `cek`, tried in order: the explicit one, the
 * TEST one (the simulator's), the built-in AMD roots. Only chooses which
 * ASK‖ARK goes with the chain; trusting a root is the verifier's decision.
 */
function signingCa(cek: SevCert, given: CaChain | undefined, sim: CaChain | undefined): SigningCa | undefined {
  if (given && verifyAskCek(given.ask, cek).ok) return { ca: given, caSource: 'given' };
  if (sim && verifyAskCek(sim.ask, cek).ok) return { ca: sim, caSource: 'simulator' };
  const generation = detectGeneration(cek);
  return generation ? { ca: builtinCaChain(generation), caSource: 'builtin', generation } : undefined;
}

interface PlatformChain extends PlatformSevChain {
  /** The CA chain that signs the firmware's CEK (cekSource 'firmware' only). */
  signer?: SigningCa;
  given: CaChain | undefined;
  sim: CaChain | undefined;
}

/** The platform's chain with an ASK-signed CEK, and the candidate CA chains read once. */
async function platformChain(platform: CertPlatform, opts: PlatformChainOptions): Promise<PlatformChain> {
  const sev = decodeExport(await platform.exportCerts());
  const given = opts.ca ? asCaChain(opts.ca) : undefined;
  const sim = opts.testCa;
  const signer = signingCa(sev.cek, given, sim);
  if (signer) return { sev, cekSource: 'firmware', signer, given, sim };
  const id = await platform.getId();
  const cekRaw = await fetchCek(id, opts.kds);
  return { sev: { ...sev, cek: decodeSevCert(cekRaw, { name: 'CEK from AMD KDS', usage: Usage.CEK }) }, cekSource: 'kds', given, sim };
}

/** PDH‖PEK‖OCA‖CEK of the platform, with an ASK-signed CEK (KDS when needed). */
export async function platformSevChain(platform: CertPlatform, opts: PlatformChainOptions = {}): Promise<PlatformSevChain> {
  const { sev, cekSource } = await platformChain(platform, opts);
  return { sev, cekSource };
}

/** The platform's full chain, its encodings, and where the CEK and the CA chain came from. */
export interface PlatformFullChain {
  chain: FullChain;
  /** PDH‖PEK‖OCA‖CEK‖ASK‖ARK */
  bytes: Buffer;
  /** PDH‖PEK‖OCA‖CEK */
  sevBytes: Buffer;
  cekSource: 'firmware' | 'kds';
  caSource: 'given' | 'simulator' | 'builtin';
  generation?: Generation;
}

/**
 * The full chain for `sevkit export --full`: the explicit CA when it signs
 * the CEK, else the TEST CA (the simulator's) when it does, else the
 * built-in AMD roots of the generation that signs the (KDS) CEK.
 */
export async function fullChainFor(platform: CertPlatform, opts: PlatformChainOptions = {}): Promise<PlatformFullChain> {
  const { sev, cekSource, signer: firmwareSigner, given, sim } = await platformChain(platform, opts);
  const signer = firmwareSigner ?? signingCa(sev.cek, given, sim);
  if (!signer) {
    throw new CertificateError(
      'ERR_CERT_GENERATION',
      "could not find a matching built-in AMD certificate: no ASK (naples, rome, milan, genoa, turin) signs the platform's CEK",
      { cert: 'CEK', field: 'signature' },
    );
  }
  const chain: FullChain = { sev, ca: signer.ca };
  const res: PlatformFullChain = { chain, bytes: encodeFullChain(chain), sevBytes: encodeSevChain(sev), cekSource, caSource: signer.caSource };
  if (signer.generation) res.generation = signer.generation;
  return res;
}
