/**
 * Fuzz of the SNP decoders: mutated real reports, certificates, CRLs and certificate tables
 * either decode or fail with the area's typed errors; never another exception, never a crash.
 * Deterministic (seeded), a few thousand cases, well under a second or two each.
 */
import { describe, expect, it } from 'vitest';
import { parseCertTable } from '../../lib/snp/certtable.js';
import { parseCrl } from '../../lib/snp/crl.js';
import { CertTableError, ReportFormatError, SnpCertError } from '../../lib/snp/errors.js';
import { encodeReport, parseReport } from '../../lib/snp/report.js';
import { verifySnpReport } from '../../lib/snp/verify.js';
import { parseAmdCert } from '../../lib/snp/x509.js';
import { realVectors, snpFile } from './vectors.js';

/** xorshift32: reproducible cases. */
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return (n: number) => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s % n;
  };
}

function mutate(src: Buffer, r: (n: number) => number): Buffer {
  const b = Buffer.from(src);
  switch (r(4)) {
    case 0: // flip a few bytes
      for (let i = 0, n = 1 + r(4); i < n; i++) b[r(b.length)]! ^= 1 + r(255);
      return b;
    case 1: // truncate
      return b.subarray(0, r(b.length));
    case 2: {
      // overwrite a run with random bytes
      const at = r(b.length);
      for (let i = at; i < Math.min(b.length, at + 1 + r(32)); i++) b[i] = r(256);
      return b;
    }
    default: {
      // insert bytes (lengths then lie)
      const at = r(b.length);
      return Buffer.concat([b.subarray(0, at), Buffer.from(Array.from({ length: 1 + r(8) }, () => r(256))), b.subarray(at)]);
    }
  }
}

const expectTyped = (f: () => unknown, types: (abstract new (...a: never[]) => Error)[]) => {
  try {
    f();
  } catch (e) {
    if (!types.some((t) => e instanceof t)) throw new Error(`untyped error: ${String(e)}`, { cause: e });
  }
};

describe('SNP decoder fuzz', () => {
  const vectors = realVectors();
  it('mutated reports parse, re-encode to the same bytes, or fail with ReportFormatError; verify never throws', () => {
    const r = rng(18);
    let parsed = 0;
    for (let i = 0; i < 3000; i++) {
      const v = vectors[r(vectors.length)]!;
      const b =
        r(3) === 0
          ? mutate(v.report, r)
          : (() => {
              const x = Buffer.from(v.report);
              x[r(0x2a0)]! ^= 1 << r(8); // inside the fields: keeps the size
              return x;
            })();
      try {
        const rep = parseReport(b);
        parsed++;
        expect(encodeReport(rep).equals(b)).toBe(true);
      } catch (e) {
        if (!(e instanceof ReportFormatError)) throw e;
      }
      if (i % 10 === 0) {
        const verdict = verifySnpReport({ report: b, vek: v.vek });
        if (!b.equals(v.report)) expect(verdict.ok).toBe(false);
      }
    }
    expect(parsed).toBeGreaterThan(100); // the fuzz reached the field decoders, not only the size check
  });

  it('mutated certificates decode or fail with SnpCertError', () => {
    const certs = [
      snpFile('virtee-sev/tests/certs_data/vcek_turin.der'),
      snpFile('derived/oak_milan_vcek.der'),
      snpFile('confidential-containers-trustee/deps/verifier/test_data/snp/test-vlek.der'),
      snpFile('confidential-containers-trustee/deps/verifier/test_data/snp/test-vcek-invalid-new.der'),
    ];
    const r = rng(7);
    for (let i = 0; i < 800; i++) {
      const b = mutate(certs[r(certs.length)]!, r);
      expectTyped(() => parseAmdCert(b, 'fuzz'), [SnpCertError]);
    }
    for (let i = 0; i < 300; i++) {
      const b = Buffer.from(Array.from({ length: r(64) }, () => r(256)));
      expectTyped(() => parseAmdCert(b, 'fuzz'), [SnpCertError]);
      expectTyped(() => parseCrl(b), [SnpCertError]);
    }
  });

  it('mutated certificate tables parse or fail with CertTableError', () => {
    const table = snpFile('derived/turin_cert_table_constructed.bin');
    const r = rng(99);
    for (let i = 0; i < 2000; i++) {
      const b = i % 2 ? mutate(table, r) : mutate(table.subarray(0, 4 * 24), r);
      expectTyped(() => parseCertTable(b), [CertTableError]);
    }
  });
});
