/** The library's trust-anchor rule (resolveTrustAnchor) and the full-chain anchor check (verifyTrustedChain). */
import { afterAll, describe, expect, it } from 'vitest';
import {
  CertificateError,
  TEST_ROOT_KEY_ID_PREFIX,
  builtinCaChain,
  decodeCaChain,
  decodeFullChain,
  decodeSevChain,
  encodeCaChain,
  encodeFullChain,
  isTestRoot,
  resolveTrustAnchor,
  verifyTrustedChain,
} from '../../lib/certs/index.js';
import { TEST_ROOT_ID_PREFIX } from '../../lib/sim/keys.js';
import { cleanupDirs, exportCerts, freshPlatform } from '../sim/helpers.js';
import { derived, realCert } from './fixtures.js';

afterAll(cleanupDirs);

const code = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(CertificateError);
    return (e as CertificateError).code;
  }
  return undefined;
};

describe('resolveTrustAnchor', () => {
  const romeCa = derived('rome', 'ca_chain');

  it('an explicit CA chain wins over the CEK, and is what it was given', () => {
    const a = resolveTrustAnchor({ ca: romeCa, cek: realCert('naples', 'cek') })!;
    expect(a.chosenBy).toBe('ca');
    expect(encodeCaChain(a.ca)).toEqual(romeCa);
    expect(a.testRoot).toBe(false);
    expect(a.generation).toBeUndefined();
  });

  it('a named generation gives its built-in roots whatever the CEK', () => {
    const a = resolveTrustAnchor({ generation: 'milan', cek: realCert('naples', 'cek') })!;
    expect(a).toMatchObject({ chosenBy: 'generation', generation: 'milan', testRoot: false, description: 'built-in AMD milan roots' });
    expect(encodeCaChain(a.ca)).toEqual(encodeCaChain(builtinCaChain('milan')));
  });

  it('otherwise the built-in roots whose ASK signs the CEK, ahead of a TEST CA', () => {
    const p = freshPlatform();
    const testCa = decodeCaChain(p.caChain());
    for (const g of ['naples', 'rome'] as const) {
      const a = resolveTrustAnchor({ cek: realCert(g, 'cek'), testCa })!;
      expect(a).toMatchObject({ chosenBy: 'detected', generation: g, testRoot: false });
    }
  });

  it('the TEST CA only when its ASK signs the CEK and no AMD ASK does, marked as a TEST root', () => {
    const p = freshPlatform();
    const testCa = decodeCaChain(p.caChain());
    const simCek = exportCerts(p).chain.subarray(2 * 0x824);
    const a = resolveTrustAnchor({ cek: simCek, testCa })!;
    expect(a.chosenBy).toBe('test');
    expect(a.testRoot).toBe(true);
    expect(a.ca).toBe(testCa);
    expect(resolveTrustAnchor({ cek: simCek })).toBeUndefined();
    // …and never for a CEK an AMD ASK signs, nor when a CA or a generation was named.
    expect(resolveTrustAnchor({ cek: realCert('rome', 'cek'), testCa })!.chosenBy).toBe('detected');
    expect(resolveTrustAnchor({ generation: 'genoa', cek: simCek, testCa })!.chosenBy).toBe('generation');
    // A given CA that is a TEST root is still flagged.
    expect(resolveTrustAnchor({ ca: p.caChain() })!.testRoot).toBe(true);
  });

  it('refuses a CA chain and a generation together, and says when nothing applies', () => {
    expect(code(() => resolveTrustAnchor({ ca: romeCa, generation: 'rome' }))).toBe('ERR_CERT_ANCHOR');
    expect(resolveTrustAnchor({})).toBeUndefined();
  });

  it("knows the simulator's TEST root key ids", () => {
    expect(TEST_ROOT_KEY_ID_PREFIX).toBe(TEST_ROOT_ID_PREFIX);
    expect(isTestRoot(builtinCaChain('genoa'))).toBe(false);
    expect(isTestRoot(decodeCaChain(freshPlatform().caChain()))).toBe(true);
  });
});

describe('verifyTrustedChain', () => {
  it('a full chain whose ASK/ARK are the anchor verifies; the anchor is reported', () => {
    for (const g of ['naples', 'rome'] as const) {
      const r = verifyTrustedChain({ chain: derived(g, 'full_chain') });
      expect(r.ok).toBe(true);
      expect(r.anchor).toMatchObject({ chosenBy: 'detected', generation: g });
      expect(r.caSource).toBe('builtin');
    }
  });

  it("refuses a full chain whose ARK is not the anchor's, even when its own links verify", () => {
    const naples = decodeFullChain(derived('naples', 'full_chain'));
    const rome = decodeFullChain(derived('rome', 'full_chain'));
    // Rome's SEV chain with Rome's CA is self-consistent, but the anchor asked for is Naples'.
    expect(code(() => verifyTrustedChain({ chain: derived('rome', 'full_chain'), generation: 'naples' }))).toBe('ERR_CHAIN_UNTRUSTED');
    expect(code(() => verifyTrustedChain({ chain: rome, ca: derived('naples', 'ca_chain') }))).toBe('ERR_CHAIN_UNTRUSTED');
    // A chain carrying the wrong CA after a CEK that Naples' ASK signs: the anchor (Naples) is not its CA.
    const mixed = encodeFullChain({ sev: naples.sev, ca: rome.ca });
    expect(code(() => verifyTrustedChain({ chain: mixed }))).toBe('ERR_CHAIN_UNTRUSTED');
    // The same SEV chain without a CA of its own verifies against the anchor.
    expect(verifyTrustedChain({ chain: naples.sev }).ok).toBe(true);
  });

  it('a chain no anchor applies to fails its CA links instead of trusting its own CA', () => {
    const p = freshPlatform();
    const { pdh, chain } = exportCerts(p);
    const full = Buffer.concat([pdh, chain, p.caChain()]);
    const r = verifyTrustedChain({ chain: full });
    expect(r.ok).toBe(false);
    expect(r.anchor).toBeUndefined();
    expect(r.failed.map((l) => l.id)).toEqual(['ask-cek', 'ark-ask', 'ark-self']);
    const t = verifyTrustedChain({ chain: full, testCa: decodeCaChain(p.caChain()) });
    expect(t.ok).toBe(true);
    expect(t.anchor?.chosenBy).toBe('test');
    expect(verifyTrustedChain({ chain: decodeSevChain(Buffer.concat([pdh, chain])), generation: 'rome' }).ok).toBe(false);
  });
});
