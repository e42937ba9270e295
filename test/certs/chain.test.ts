import { describe, expect, it } from 'vitest';
import {
  CertificateError,
  Usage,
  builtinCaChain,
  decodeCaChain,
  decodeFullChain,
  decodeSevChain,
  decodeSevCert,
  detectGeneration,
  encodeCaChain,
  encodeFullChain,
  encodeSevChain,
  encodeSevCert,
  verifyAskCek,
  verifyChain,
  GENERATIONS,
  SEV_CHAIN_SIZE,
} from '../../lib/certs/index.js';
import { derived, realCert } from './fixtures.js';

const EXPECTED = {
  naples: {
    pdh: 'PDH EP384 D256 dbec0cf343b140dc7ded571935e8d0ec8059fd1610ddb3c79eb177e7cd3878a2',
    pek: 'PEK EP384 E256 8d55d63b6792c6ed10e11df7afc7e25d6a0428a6351fb9a806ec4160f2b0f390',
    oca: 'OCA EP384 E256 70bb8f3702b22e848ef7a5dac704186ee80a889273443b4b5466da9405d4cc03',
    cek: 'CEK EP384 E256 0f6570c3ddec6b393398084251f6924fcfb7d8fa1779e4e36dbbca30ee0c4f38',
    ask: 'ASK R2048 R256 5dff2a2a4dd59dc095d73a26af28be523192ade830bdd35bacdd81ee75584c45',
    ark: 'ARK R2048 R256 8efddcaaf84990cf6354d93637be270220cf15797332b3d918c3b8cc77349f31',
  },
  rome: {
    pdh: 'PDH EP384 D256 a19ef679477f2256d802ce9054ee6d1145dbeed52998c66ea97499a01d977c54',
    pek: 'PEK EP384 E256 a37b51038cbaec1062f7b5f93e8caa55cc7798b1a813c26fae1cabc96320fa0a',
    oca: 'OCA EP384 E256 deae2d45b8d1456c94b514fba0e6f6fb9f13afc9df9ba9670e9c9e9e54b4af6e',
    cek: 'CEK EP384 E256 ce2cba2df8808d188f445192418e008ecf9bd1464db35ea64afa3b3b6966396c',
    ask: 'ASK R4096 R384 d8cd9d1798c311c96e009a91552f17b4ddc4886a064ec933697734965b9ab29db803c79604e2725658f0861bfaf09ad4',
    ark: 'ARK R4096 R384 3d2c1157c29ef7bd4207fc0c8b08db080e579ceba267f8c93bec8dce73f5a5e2e60d959ac37ea82176c1a0c61ae203ed',
  },
};

describe('real chains', () => {
  for (const gen of ['naples', 'rome'] as const) {
    it(`${gen}: chain files decode/encode byte-exactly and the chain verifies with built-in roots`, () => {
      const sevRaw = derived(gen, 'sev_chain');
      const caRaw = derived(gen, 'ca_chain');
      const fullRaw = derived(gen, 'full_chain');
      expect(sevRaw.length).toBe(SEV_CHAIN_SIZE);
      expect(fullRaw.length).toBe(gen === 'naples' ? 10000 : 11536);
      const sev = decodeSevChain(sevRaw);
      expect(encodeSevChain(sev).equals(sevRaw)).toBe(true);
      expect(encodeCaChain(decodeCaChain(caRaw)).equals(caRaw)).toBe(true);
      const full = decodeFullChain(fullRaw);
      expect(encodeFullChain(full).equals(fullRaw)).toBe(true);
      // the individual exported certs are the chain's parts
      for (const n of ['pdh', 'pek', 'oca', 'cek'] as const) expect(encodeSevCert(sev[n]).equals(realCert(gen, n))).toBe(true);

      const r = verifyChain({ sev: sevRaw });
      expect(r.ok).toBe(true);
      expect(r.generation).toBe(gen);
      expect(r.caSource).toBe('builtin');
      expect(r.display).toEqual(EXPECTED[gen]);
      expect(r.links.map((l) => [l.id, l.ok])).toEqual([
        ['pek-pdh', true],
        ['oca-pek', true],
        ['oca-self', true],
        ['cek-pek', true],
        ['ask-cek', true],
        ['ark-ask', true],
        ['ark-self', true],
      ]);
      // the PEK verified through two different slots
      expect(r.links.find((l) => l.id === 'oca-pek')!.slot).toBe(1);
      expect(r.links.find((l) => l.id === 'cek-pek')!.slot).toBe(2);
      // explicit CA chain gives the same result
      expect(verifyChain({ sev: full.sev, ca: full.ca }).ok).toBe(true);
    });
  }

  it("Rome's ASK rejects Naples' CEK and generation detection is exact", () => {
    const naplesCek = realCert('naples', 'cek');
    const romeCek = realCert('rome', 'cek');
    expect(verifyAskCek(builtinCaChain('rome').ask, naplesCek).ok).toBe(false);
    for (const g of GENERATIONS) {
      expect(verifyAskCek(builtinCaChain(g).ask, naplesCek).ok).toBe(g === 'naples');
      expect(verifyAskCek(builtinCaChain(g).ask, romeCek).ok).toBe(g === 'rome');
    }
    expect(detectGeneration(naplesCek)).toBe('naples');
    expect(detectGeneration(romeCek)).toBe('rome');
  });

  it('a chain under the wrong roots fails at ASK→CEK only', () => {
    const r = verifyChain({ sev: derived('rome', 'sev_chain'), ca: derived('naples', 'ca_chain') });
    expect(r.ok).toBe(false);
    expect(r.failed.map((l) => l.id)).toEqual(['ask-cek']);
    const r2 = verifyChain({ sev: derived('naples', 'sev_chain'), generation: 'rome' });
    expect(r2.failed.map((l) => l.id)).toEqual(['ask-cek']);
    expect(r2.failed[0]!.reason).toMatch(/algorithm does not match the ASK key/);
  });

  it("swapping in another platform's OCA breaks OCA→PEK but keeps the OCA self-signature", () => {
    const r = verifyChain({ sev: derived('rome', 'sev_chain'), oca: realCert('naples', 'oca') });
    expect(r.failed.map((l) => l.id)).toEqual(['oca-pek']);
    expect(r.failed[0]!.reason).toBe("PEK's signature by OCA does not verify");
  });

  it('both PEK signatures are required', () => {
    for (const slot of [0, 1]) {
      const sev = decodeSevChain(derived('naples', 'sev_chain'));
      sev.pek.sigs[slot] = { usage: Usage.INV, algo: 0, value: Buffer.alloc(512) };
      const r = verifyChain({ sev });
      expect(r.failed.map((l) => l.id)).toEqual([slot === 0 ? 'oca-pek' : 'cek-pek']);
      expect(r.failed[0]!.reason).toMatch(/has no signature slot with signer usage (OCA|CEK)/);
    }
  });

  it('a PDH signed by the wrong key, or a PEK slot claiming the wrong usage, fails', () => {
    const sev = decodeSevChain(derived('naples', 'sev_chain'));
    // Relabel the CEK slot as an OCA slot: now two OCA slots, none for CEK.
    sev.pek.sigs[1] = { ...sev.pek.sigs[1], usage: Usage.OCA };
    const r = verifyChain({ sev });
    expect(r.failed.map((l) => l.id)).toEqual(['cek-pek']);
    const sev2 = decodeSevChain(derived('naples', 'sev_chain'));
    sev2.pdh = decodeSevChain(derived('rome', 'sev_chain')).pdh;
    expect(verifyChain({ sev: sev2 }).failed.map((l) => l.id)).toEqual(['pek-pdh']);
  });

  it('no built-in root for an unknown CEK is reported, not thrown', () => {
    const sev = decodeSevChain(derived('naples', 'sev_chain'));
    sev.cek = { ...sev.cek, sigs: [{ usage: Usage.INV, algo: 0, value: Buffer.alloc(512) }, sev.cek.sigs[1]] };
    const r = verifyChain({ sev });
    expect(r.caSource).toBe('none');
    expect(r.generation).toBeUndefined();
    expect(r.failed.map((l) => l.id)).toEqual(['ask-cek', 'ark-ask', 'ark-self']);
  });

  it('chain decoders name the file and the certificate at fault', () => {
    const sev = Buffer.from(derived('rome', 'sev_chain'));
    sev.writeUInt32LE(2, 0x824); // PEK version
    expect(() => decodeSevChain(sev, 'chain.bin')).toThrow(/^chain\.bin: PEK: version is 2, expected 1$/);
    const swapped = Buffer.concat([derived('rome', 'sev_chain').subarray(0x824, 0x1048), derived('rome', 'sev_chain').subarray(0x824)]);
    expect(() => decodeSevChain(swapped, 'x')).toThrow(/^x: PDH: pubkey_usage is PEK, expected PDH$/);
    // ARK‖ASK in the wrong order
    const ca = derived('rome', 'ca_chain');
    const wrongOrder = Buffer.concat([ca.subarray(1600), ca.subarray(0, 1600)]);
    expect(() => decodeCaChain(wrongOrder, 'ca.bin')).toThrow(/^ca\.bin: ASK: key_usage is ARK, expected ASK$/);
    // a full chain is not a CA chain
    expect(() => decodeCaChain(derived('rome', 'full_chain'), 'full.bin')).toThrow(CertificateError);
    expect(() => decodeFullChain(derived('rome', 'sev_chain'), 's')).toThrow(/needs ASK‖ARK/);
    expect(() => decodeFullChain(Buffer.concat([derived('rome', 'full_chain'), Buffer.alloc(3)]), 'f')).toThrow(/3 unexpected bytes/);
    expect(() => decodeSevChain(sev.subarray(0, 100), 'short')).toThrow(/^short: size is 100 bytes/);
  });

  it('chains handed over already decoded get the same role checks as bytes', () => {
    const sev = decodeSevChain(derived('rome', 'sev_chain'));
    const ca = decodeCaChain(derived('rome', 'ca_chain'));
    expect(verifyChain({ sev, ca }).ok).toBe(true);
    // An OCA standing in for the PEK (it can vouch for itself through its OCA slot) is refused up front.
    expect(() => verifyChain({ sev: { ...sev, pek: sev.oca }, ca })).toThrow(/^PEK: pubkey_usage is OCA, expected PEK$/);
    expect(() => verifyChain({ sev, ca, oca: sev.pek })).toThrow(/^OCA: pubkey_usage is PEK, expected OCA$/);
    expect(() => verifyChain({ sev, ca: { ask: ca.ark, ark: ca.ark } })).toThrow(/^ASK: key_usage is ARK, expected ASK$/);
    expect(() => verifyChain({ sev, ca: { ask: ca.ask, ark: ca.ask } })).toThrow(CertificateError);
    expect(() => detectGeneration(sev.pek)).toThrow(/^CEK: pubkey_usage is PEK, expected CEK$/);
  });
});

/** Sampled here; scripts/certs-bitflip.ts flips every bit. */
describe('single-bit flips in signed bytes are rejected (sampled)', () => {
  const SIGNED: Record<string, [number, number]> = {
    PDH: [0, 0x414],
    PEK: [0x824, 0x824 + 0x414],
    OCA: [0x1048, 0x1048 + 0x414],
    CEK: [0x186c, 0x186c + 0x414],
    ASK: [SEV_CHAIN_SIZE, SEV_CHAIN_SIZE + 0x40 + 2 * 512],
    ARK: [SEV_CHAIN_SIZE + 1600, SEV_CHAIN_SIZE + 1600 + 0x40 + 2 * 512],
  };
  for (const gen of ['naples', 'rome'] as const) {
    it(`${gen}: 40 random bit positions per certificate`, () => {
      const full = derived(gen, 'full_chain');
      const signed =
        gen === 'naples'
          ? {
              ...SIGNED,
              ASK: [SEV_CHAIN_SIZE, SEV_CHAIN_SIZE + 0x40 + 512] as [number, number],
              ARK: [SEV_CHAIN_SIZE + 832, SEV_CHAIN_SIZE + 832 + 0x40 + 512] as [number, number],
            }
          : SIGNED;
      let seed = gen === 'naples' ? 1 : 2;
      const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
      let rejectedByDecode = 0;
      for (const [name, [lo, hi]] of Object.entries(signed)) {
        for (let i = 0; i < 40; i++) {
          const bit = Math.floor(rnd() * (hi - lo) * 8);
          const b = Buffer.from(full);
          b[lo + (bit >> 3)]! ^= 1 << (bit & 7);
          let ok: boolean;
          try {
            const c = decodeFullChain(b);
            ok = verifyChain({ sev: c.sev, ca: c.ca }).ok;
          } catch (e) {
            expect(e).toBeInstanceOf(CertificateError);
            rejectedByDecode++;
            ok = false;
          }
          if (ok) throw new Error(`${gen} ${name}: flip of bit ${bit} at byte ${lo + (bit >> 3)} was accepted`);
        }
      }
      expect(rejectedByDecode).toBeLessThan(6 * 40);
    });
  }
});

describe('decodeSevCert on a chain', () => {
  it('allowTrailing reads the first certificate of a chain file', () => {
    const c = decodeSevCert(derived('rome', 'full_chain'), { allowTrailing: true, usage: Usage.PDH });
    expect(encodeSevCert(c).equals(realCert('rome', 'pdh'))).toBe(true);
  });
});
