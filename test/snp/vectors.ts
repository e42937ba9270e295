/**
 * The real SNP report vectors (test/fixtures/vectors/snp-attestation, SOURCE.md there) with the VEK that
 * signed each and the known answers computed independently when they were vendored.
 */
import fs from 'node:fs';
import path from 'node:path';
import { VECTORS } from '../helpers/cli.js';

/** Root of the SNP attestation vectors. */
export const SNP_VECTORS = path.join(VECTORS, 'snp-attestation');

/** One file under SNP_VECTORS. */
export function snpFile(rel: string): Buffer {
  return fs.readFileSync(path.join(SNP_VECTORS, rel));
}

/** A real report, the certificate that signed it, and its known answers. */
export interface RealVector {
  name: string;
  report: Buffer;
  /** The VCEK/VLEK, PEM or DER as vendored (the Azure bundle holds VCEK first). */
  vek: Buffer;
  /** Known answers (derived/known-answers.json). */
  known: KnownAnswer;
}

/** The fields of known-answers.json the tests use. */
export interface KnownAnswer {
  name: string;
  kds_product: string;
  measurement: string;
  chip_id: string;
  report_data: string;
  host_data: string;
  id_key_digest: string;
  parsed: {
    version: number;
    policy: string;
    plat_info: string;
    vmpl: number;
    signing_key: number;
    cpuid: [number, number, number];
    current_ver: string;
    reported_tcb: { bl: number; tee: number; snp: number; ucode: number; raw: string };
    current_tcb: { bl: number; tee: number; snp: number; ucode: number; raw: string };
  };
  report: { sha256_of_1184_bytes: string };
  vek: { not_before: string; not_after: string; subject_cn: string };
}

const FILES: Record<string, [string, string]> = {
  virtee_milan_v2: ['derived/virtee_report_milan.bin', 'virtee-sev/tests/certs_data/vcek_milan.der'],
  gsg_milan_v2: ['google-go-sev-guest/verify/testdata/attestation.bin', 'google-go-sev-guest/verify/testdata/vcek.testcer'],
  trustee_milan_v2_reported_lt_current: [
    'confidential-containers-trustee/deps/verifier/test_data/snp/test-report.bin',
    'confidential-containers-trustee/deps/verifier/test_data/snp/test-vcek.der',
  ],
  trustee_aws_milan_v3_vlek_vmpl1: [
    'confidential-containers-trustee/deps/verifier/test_data/snp/test-vlek-report.bin',
    'confidential-containers-trustee/deps/verifier/test_data/snp/test-vlek.der',
  ],
  constellation_azure_milan_v2: [
    'edgelesssys-constellation/internal/attestation/snp/testdata/attestation.bin',
    'edgelesssys-constellation/internal/attestation/snp/testdata/vcek.cert',
  ],
  constellation_aws_milan_v3_vlek: ['derived/constellation_aws_vlek_v3_report.bin', 'edgelesssys-constellation/internal/attestation/aws/snp/testdata/vlek.pem'],
  azure_milan_v2_hcl: ['derived/azure_milan_v2_report.bin', 'confidential-containers-trustee/deps/verifier/test_data/az-snp-vtpm/vcek.pem'],
  azure_milan_v3_hcl: ['derived/azure_milan_v3_report.bin', 'derived/azure_milan_v3_vcek.pem'],
  oak_milan_v3: ['derived/oak_milan_v3_report.bin', 'derived/oak_milan_vcek.der'],
  azure_genoa_v3_hcl: ['derived/azure_genoa_v3_report.bin', 'derived/azure_genoa_vcek.pem'],
};

/** All ten real vectors. */
export function realVectors(): RealVector[] {
  const ka = JSON.parse(snpFile('derived/known-answers.json').toString('utf8')) as { vectors: KnownAnswer[] };
  return ka.vectors.map((known) => {
    const f = FILES[known.name];
    if (!f) throw new Error(`no files for vector ${known.name}`);
    return { name: known.name, report: snpFile(f[0]).subarray(0, 1184), vek: snpFile(f[1]), known };
  });
}

/** A time inside every vector's VEK validity (the AWS VLEKs expired on 2025-12-10). */
export function validTime(v: RealVector): Date {
  return v.known.vek.not_after < '2026-12-06' ? new Date('2025-06-01T00:00:00Z') : new Date('2026-12-06T00:00:00Z');
}
