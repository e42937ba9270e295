/**
 * SNP launch digest against sev-snp-measure's answers: the upstream test cases (vectors.json, HEAD and the
 * 9dabc4b generation), the extra cases with per-update traces (snp-digest-extra.json; a mismatch names the
 * first update that diverged), the VMSA pages, and the typed errors for firmware that lacks what is asked.
 */
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import {
  computeSnpDigest,
  snpLaunchDigest,
  loadSnpFirmware,
  snpPrefix,
  extendSnpVmsas,
  buildSnpKernelHashesPage,
  buildSnpVmsa,
  resolveSnpVcpuSig,
  SnpGctx,
  SnpPageType,
  SNP_BSP_EIP,
  type GctxStep,
  type SnpVmmType,
} from '../../lib/snp/digest.js';
import { sha384, snpPageTypeName } from '../../lib/snp/gctx.js';
import { parseSevMetadata, sevSectionName } from '../../lib/snp/metadata.js';
import { parseGuestFeatures } from '../../lib/snp/vmsa.js';
import { parseOvmf } from '../../lib/firmware/ovmf.js';
import { buildKernelHashesTable } from '../../lib/launch/hashes.js';
import { guidToBytes } from '../../lib/firmware/guid.js';
import { SevkitError } from '../../lib/errors.js';
import { loadVectors, inputFile, kernelOf, hex, SNP_LAUNCH, SNP_MEASURE } from './digest-helpers.js';

const vectors = loadVectors('sev-snp-measure/vectors.json');
const extra = loadVectors('snp-launch/snp-digest-extra.json');
const AMDSEV = fs.readFileSync(path.join(SNP_MEASURE, 'ovmf_AmdSev_suffix.bin'));
const OVMFX64 = fs.readFileSync(path.join(SNP_MEASURE, 'ovmf_OvmfX64_suffix.bin'));
const vmm = (s: string) => s.toLowerCase() as SnpVmmType;
const sig = (s: string | null | undefined) => (s == null ? undefined : Number.parseInt(s, 16));

interface TraceEntry {
  i: number;
  page_type: string;
  gpa: string;
  contents: string;
  ld_after: string;
  page_info_hex?: string;
}

/** The first recorded update that differs from the vector's trace, in words; undefined when all agree. */
function divergence(steps: GctxStep[], trace: TraceEntry[]): string | undefined {
  for (const t of trace) {
    const s = steps[t.i];
    if (!s) return `update ${t.i} (${t.page_type} at ${t.gpa}) was never made: only ${steps.length} updates`;
    const got = {
      page_type: snpPageTypeName(s.pageType),
      gpa: `0x${s.gpa.toString(16)}`,
      contents: s.contents.toString('hex'),
      ld_after: s.ldAfter.toString('hex'),
    };
    for (const k of ['page_type', 'gpa', 'contents', 'ld_after'] as const) {
      if (got[k] !== t[k]) return `diverged at update ${t.i} (expected ${t.page_type} page at ${t.gpa}): ${k} is ${got[k]}, expected ${t[k]}`;
    }
  }
  return undefined;
}

describe('sev-snp-measure upstream SNP cases (vectors.json)', () => {
  const gens = [
    { section: 'head', dir: '', fpu: 'init2' as const, cloudRdx: undefined },
    // 9dabc4b (v0.0.9 era): no FPU state in the QEMU VMSA, EC2 RDX 0, the older fixtures.
    { section: 'legacy_9dabc4b', dir: 'history-9dabc4b', fpu: 'legacy' as const, cloudRdx: 0 },
  ];
  for (const g of gens) {
    const cases = (vectors[g.section] as any[]).filter((c) => c.mode === 'SEV_SNP' && (c.expected_digest_hex || c.expect_error));
    it(`${g.section}: every SNP case (${cases.length}) reproduces`, () => {
      expect(cases.length).toBeGreaterThanOrEqual(14);
      for (const c of cases) {
        const seed = typeof c.snp_ovmf_hash === 'string' && /^[0-9a-f]{96}$/.test(c.snp_ovmf_hash) ? hex(c.snp_ovmf_hash) : undefined;
        const run = () =>
          snpLaunchDigest({
            firmware: fs.readFileSync(path.join(SNP_MEASURE, g.dir, c.ovmf)),
            firmwareName: c.ovmf,
            vcpus: c.vcpus,
            vcpuSig: sig(c.vcpu_sig),
            guestFeatures: c.guest_features,
            vmmType: vmm(c.vmm_type),
            kernel: kernelOf({ ...c, kernel: c.kernel, initrd: c.initrd }),
            ...(vmm(c.vmm_type) === 'qemu' ? { fpu: g.fpu } : {}),
            ...(g.cloudRdx !== undefined ? { cloudRdx: g.cloudRdx } : {}),
            ...(seed ? { ovmfHash: seed } : {}),
          });
        if (c.expect_error) {
          expect(run, c.test).toThrow(c.expect_error);
          continue;
        }
        expect(run().toString('hex'), c.test).toBe(c.expected_digest_hex);
        if (c.expected_intermediate_snp_ovmf_hash_hex) {
          expect(
            loadSnpFirmware(fs.readFileSync(path.join(SNP_MEASURE, g.dir, c.ovmf)))
              .ovmfHash()
              .toString('hex'),
            c.test,
          ).toBe(c.expected_intermediate_snp_ovmf_hash_hex);
        }
      }
    });
  }
});

describe('extra SNP cases with per-update traces (snp-digest-extra.json)', () => {
  for (const c of extra.cases as any[]) {
    it(`${c.name}: digest, LD before the VMSAs, update counts, VMSA hashes and trace`, () => {
      const steps: GctxStep[] = [];
      const r = computeSnpDigest({
        firmware: inputFile(c.ovmf)!,
        vcpus: c.vcpus,
        vcpuSig: sig(c.vcpu_sig),
        guestFeatures: c.guest_features,
        vmmType: vmm(c.vmm_type),
        kernel: kernelOf(c),
        onStep: (s) => steps.push(s),
      });
      const trace: TraceEntry[] = c.trace ?? [...c.trace_first, ...c.trace_last];
      expect(divergence(steps, trace), c.name).toBeUndefined();
      expect(steps.length).toBe(c.n_updates);
      expect(r.updates).toBe(c.n_updates);
      const counts: Record<string, number> = {};
      for (const s of steps) counts[snpPageTypeName(s.pageType)] = (counts[snpPageTypeName(s.pageType)] ?? 0) + 1;
      expect(counts).toEqual(c.update_counts);
      expect(r.ldBeforeVmsas.toString('hex')).toBe(c.ld_before_vmsas);
      const vmsaHashes = steps.filter((s) => s.pageType === SnpPageType.VMSA).map((s) => s.contents.toString('hex'));
      expect(vmsaHashes).toEqual(c.vmsa_page_sha384);
      expect(r.digest.toString('hex')).toBe(c.expected_digest_hex);
      // The first PAGE_INFO, raw, checks the byte order of every field.
      const first = trace[0]!;
      if (first.page_info_hex)
        expect(new SnpGctx().pageInfo(SnpPageType.NORMAL, BigInt(first.gpa), hex(first.contents)).toString('hex')).toBe(first.page_info_hex);
    });
  }

  it('a wrong input is reported at the update where it diverges', () => {
    const c = (extra.cases as any[]).find((x) => x.name.startsWith('x2_'))!;
    const steps: GctxStep[] = [];
    computeSnpDigest({
      firmware: AMDSEV,
      vcpus: 2,
      vcpuType: 'EPYC-v4',
      kernel: { ...kernelOf(c)!, cmdline: 'console=ttyS0 root=/dev/vda rw' },
      onStep: (s) => steps.push(s),
    });
    // The command line only changes the kernel-hashes page (GPA 0x810000): everything before it must still agree.
    const at = (c.trace as TraceEntry[]).findIndex((t) => t.gpa === '0x810000');
    expect(divergence(steps, c.trace)).toMatch(new RegExp(`^diverged at update ${at} \\(expected NORMAL page at 0x810000\\): contents`));
  });

  it('x2 kernel-hashes table bytes and page placement', () => {
    const x2 = (extra.cases as any[]).find((x) => x.name.startsWith('x2_'))!;
    const k = kernelOf(x2)!;
    expect(buildKernelHashesTable(k).toString('hex')).toBe(extra.kernel_hashes_table_x2.table_hex);
    const page = buildSnpKernelHashesPage(loadSnpFirmware(AMDSEV), k);
    expect(page.subarray(0xc00, 0xc00 + 176).toString('hex')).toBe(extra.kernel_hashes_table_x2.table_hex);
    expect(page.subarray(0, 0xc00).every((b) => b === 0) && page.subarray(0xc00 + 176).every((b) => b === 0)).toBe(true);
  });

  it('EC2 with RDX 0 (virtee/sev, sev-snp-measure before 4a02bf0)', () => {
    for (const h of extra.ec2_rdx_history_at_46664d0 as any[]) {
      const c = (extra.cases as any[]).find((x) => x.name === h.name)!;
      const r = computeSnpDigest({ firmware: AMDSEV, vcpus: c.vcpus, guestFeatures: c.guest_features, vmmType: 'ec2', kernel: kernelOf(c), cloudRdx: 0 });
      expect(r.digest.toString('hex'), h.name).toBe(h.expected_digest_hex_rdx0);
      expect([r.vmsaHashes.bsp, r.vmsaHashes.ap].slice(0, c.vcpus).map((b) => b.toString('hex'))).toEqual(h.vmsa_page_sha384);
    }
  });

  it('legacy FPU VMSA (x13, derived) and its validation on the 9dabc4b fixture', () => {
    const v = extra.legacy_fpu_variant_derived;
    const d = (fw: Buffer, gf: number, vcpus = 1, kernel = false) =>
      snpLaunchDigest({
        firmware: fw,
        vcpus,
        vcpuType: 'EPYC-v4',
        guestFeatures: gf,
        fpu: 'legacy',
        kernel: kernel ? { kernel: Buffer.alloc(0), initrd: Buffer.alloc(0), cmdline: '' } : null,
      }).toString('hex');
    expect(d(AMDSEV, 1)).toBe(v.values.x13_head_fixture_legacyfpu_nokernel_gf1);
    expect(d(AMDSEV, 0x21)).toBe(v.values.x13_head_fixture_legacyfpu_nokernel_gf21);
    expect(sha384(buildSnpVmsa({ eip: SNP_BSP_EIP, vcpuSig: 0x800f12, guestFeatures: 1n, fpu: 'legacy' })).toString('hex')).toBe(
      v.values.x13_head_fixture_legacyfpu_bsp_sha384_gf1,
    );
    const hist = fs.readFileSync(path.join(SNP_MEASURE, 'history-9dabc4b/ovmf_AmdSev_suffix.bin'));
    expect(d(hist, 0x21)).toBe(v.validation_values.check_hist_nokernel_gf21);
    expect(d(hist, 1)).toBe(v.validation_values.check_hist_nokernel_gf1);
    expect(d(hist, 1, 4, true)).toBe(v.validation_values.check_hist_4vcpu_emptykernel_gf1);
  });

  it('snp:ovmf-hash values of the three fixtures', () => {
    const o = extra.ovmf_hashes_snp_ovmf_hash_mode;
    expect(loadSnpFirmware(AMDSEV).ovmfHash().toString('hex')).toBe(o['ovmf_AmdSev_suffix.bin (HEAD fixture)']);
    expect(loadSnpFirmware(OVMFX64).ovmfHash().toString('hex')).toBe(o['ovmf_OvmfX64_suffix.bin (HEAD fixture)']);
    expect(
      loadSnpFirmware(fs.readFileSync(path.join(SNP_MEASURE, 'history-9dabc4b/ovmf_AmdSev_suffix.bin')))
        .ovmfHash()
        .toString('hex'),
    ).toBe(o['history-9dabc4b/ovmf_AmdSev_suffix.bin']);
  });

  it('the fixtures parse to the metadata sections the vectors list', () => {
    for (const [name, fw] of [
      ['ovmf_AmdSev_suffix.bin', AMDSEV],
      ['ovmf_OvmfX64_suffix.bin', OVMFX64],
    ] as const) {
      const sections = parseSevMetadata(fw, parseOvmf(fw));
      expect(
        sections.map((s) => [sevSectionName(s.type), `0x${s.gpa.toString(16)}`, `0x${s.size.toString(16)}`]),
        name,
      ).toEqual(extra.fixture_metadata[name].sev_metadata_sections);
    }
  });
});

describe('SNP VMSA pages', () => {
  it('every page of the vectors (QEMU EPYC-v4/Genoa, EC2, GCE; 0x1/0x21; BSP/AP) hashes as upstream, and the files match byte for byte', () => {
    const pages = extra.vmsa_pages as any[];
    expect(pages.length).toBe(16);
    for (const p of pages) {
      const page = buildSnpVmsa({
        eip: Number.parseInt(p.eip, 16),
        vcpuSig: Number.parseInt(p.vcpu_sig, 16),
        guestFeatures: BigInt(p.guest_features),
        vmmType: vmm(p.vmm_type),
      });
      const label = `${p.vmm_type} ${p.vcpu_type} ${p.guest_features} ${p.role}`;
      for (const f of p.nonzero_fields as { field: string; offset: string; size: number; bytes_le_hex: string }[]) {
        const off = Number.parseInt(f.offset, 16);
        expect(page.subarray(off, off + f.size).toString('hex'), `${label} ${f.field}`).toBe(f.bytes_le_hex);
      }
      expect(sha384(page).toString('hex'), label).toBe(p.sha384);
      if (p.file) expect(page.equals(fs.readFileSync(path.join(SNP_LAUNCH, 'snp-vmsa', p.file))), p.file).toBe(true);
    }
  });

  it('guest features: reserved bits and non-integers are refused', () => {
    expect(parseGuestFeatures('0x21')).toBe(0x21n);
    expect(parseGuestFeatures(0x201)).toBe(0x201n);
    expect(() => parseGuestFeatures('0x800')).toThrow(/reserved bits 0x800/);
    expect(() => parseGuestFeatures('x')).toThrow(/not an integer/);
    expect(() => parseGuestFeatures(-1)).toThrow(/64 bits/);
  });
});

describe('the firmware is hashed once; VMSAs extend a copy', () => {
  it('one prefix serves every vCPU count, type and feature variant, equal to the one-shot digest', () => {
    const fw = loadSnpFirmware(AMDSEV);
    const k = { kernel: Buffer.from('k'), initrd: null, cmdline: 'x' };
    for (const vmmType of ['qemu', 'ec2', 'gce'] as const) {
      const prefix = snpPrefix(fw, { vmmType, kernel: k });
      const before = prefix.digest();
      for (const [vcpus, vcpuSig, gf] of [
        [1, 0x800f12, 1n],
        [3, 0xa00f11, 0x21n],
        [8, 0xb00f00, 0x201n],
      ] as const) {
        const d = extendSnpVmsas(prefix, fw, { vcpus, vcpuSig, guestFeatures: gf, vmmType });
        expect(d.equals(snpLaunchDigest({ firmware: AMDSEV, vcpus, vcpuSig, guestFeatures: gf, vmmType, kernel: k })), `${vmmType} ${vcpus}`).toBe(true);
      }
      expect(prefix.digest().equals(before)).toBe(true);
    }
  });

  it('a precomputed OVMF hash stands for the firmware pages', () => {
    const seed = loadSnpFirmware(AMDSEV).ovmfHash();
    // Another image with the same footer but different code bytes: only the metadata is read from it.
    const other = Buffer.from(AMDSEV);
    other[0] ^= 0xff;
    expect(
      snpLaunchDigest({ firmware: other, vcpus: 2, vcpuType: 'EPYC-v4', ovmfHash: seed }).equals(
        snpLaunchDigest({ firmware: AMDSEV, vcpus: 2, vcpuType: 'EPYC-v4' }),
      ),
    ).toBe(true);
    expect(
      snpLaunchDigest({ firmware: other, vcpus: 2, vcpuType: 'EPYC-v4' }).equals(snpLaunchDigest({ firmware: AMDSEV, vcpus: 2, vcpuType: 'EPYC-v4' })),
    ).toBe(false);
  });
});

describe('typed errors', () => {
  const code = (fn: () => unknown): string => {
    try {
      fn();
    } catch (e) {
      expect(e).toBeInstanceOf(SevkitError);
      return (e as SevkitError).code;
    }
    throw new Error('did not throw');
  };
  /** Offset of a footer entry's GUID (unique in the image) and of its data. */
  const entryAt = (b: Buffer, guid: string) => {
    const g = b.lastIndexOf(guidToBytes(guid));
    return { guid: g, data: g - 2 - parseOvmf(b).entries.find((x) => x.guid === guid)!.data.length };
  };
  const withMeta = (mutate: (b: Buffer, start: number) => void) => {
    const b = Buffer.from(AMDSEV);
    mutate(b, b.length - parseOvmf(b).sevMetadataOffset!);
    return b;
  };

  it('kernel hashes asked of a firmware without an SNP_KERNEL_HASHES section', () => {
    expect(code(() => snpLaunchDigest({ firmware: OVMFX64, vcpus: 1, vcpuType: 'EPYC-v4', kernel: { kernel: Buffer.alloc(0) } }))).toBe(
      'ERR_SNP_NO_KERNEL_HASHES',
    );
  });
  it('kernel hashes with a section but no usable hashes-table entry', () => {
    // Zero the footer's hashes-table base (7255371f…): QEMU refuses such a table, so no digest is made for it.
    const b = Buffer.from(AMDSEV);
    b.writeUInt32LE(0, entryAt(b, '7255371f-3a3b-4b04-927b-1da6efa8d454').data);
    expect(code(() => snpLaunchDigest({ firmware: b, vcpus: 1, vcpuType: 'EPYC-v4', kernel: { kernel: Buffer.alloc(0) } }))).toBe('ERR_OVMF_NO_HASHES');
    expect(snpLaunchDigest({ firmware: b, vcpus: 1, vcpuType: 'EPYC-v4' })).toHaveLength(48);
  });
  it('no SEV metadata: refused unless allowed (then pages and VMSAs only, as sev-snp-measure)', () => {
    const b = Buffer.from(AMDSEV);
    // Turn the metadata entry into an unknown GUID: the table stays well-formed.
    b[entryAt(b, 'dc886566-984a-4798-a75e-5585a7bf67cc').guid + 15] ^= 0xff;
    expect(code(() => snpLaunchDigest({ firmware: b, vcpus: 1, vcpuType: 'EPYC-v4' }))).toBe('ERR_SNP_NO_METADATA');
    const steps: GctxStep[] = [];
    snpLaunchDigest({ firmware: b, vcpus: 2, vcpuType: 'EPYC-v4', allowNoMetadata: true, onStep: (s) => steps.push(s) });
    expect(steps.map((s) => s.pageType)).toEqual([SnpPageType.NORMAL, SnpPageType.VMSA, SnpPageType.VMSA]);
  });
  it('bad metadata: signature, version, length, unknown section type', () => {
    expect(code(() => loadSnpFirmware(withMeta((b, s) => b.write('XSEV', s))))).toBe('ERR_SNP_METADATA');
    expect(code(() => loadSnpFirmware(withMeta((b, s) => b.writeUInt32LE(2, s + 8))))).toBe('ERR_SNP_METADATA');
    expect(code(() => loadSnpFirmware(withMeta((b, s) => b.writeUInt32LE(0x7fffffff, s + 12))))).toBe('ERR_SNP_METADATA');
    expect(code(() => loadSnpFirmware(withMeta((b, s) => b.writeUInt32LE(7, s + 16 + 8))))).toBe('ERR_SNP_METADATA_TYPE');
    // A section that is not whole pages, or one so large that hashing it is the attack.
    expect(code(() => loadSnpFirmware(withMeta((b, s) => b.writeUInt32LE(0x9001, s + 16 + 4))))).toBe('ERR_SNP_METADATA');
    expect(code(() => loadSnpFirmware(withMeta((b, s) => b.writeUInt32LE(0x40001000, s + 16 + 5 * 12 + 4))))).toBe('ERR_SNP_METADATA');
  });
  it('no footer table, no reset block, size not whole pages', () => {
    expect(code(() => loadSnpFirmware(Buffer.alloc(4096)))).toBe('ERR_OVMF_NO_TABLE');
    expect(code(() => loadSnpFirmware(AMDSEV.subarray(1)))).toBe('ERR_SNP_FIRMWARE_SIZE');
    const b = Buffer.from(AMDSEV);
    b[entryAt(b, '00f771de-1a7e-4fcb-890e-68c77e2fb44e').guid + 15] ^= 0xff;
    expect(code(() => loadSnpFirmware(b))).toBe('ERR_OVMF_NO_RESET');
  });
  it('hostile firmware: random corruption of the footer and metadata gives a digest or a SevkitError, never anything else', () => {
    // mulberry32: reproducible, and its low bits are not periodic the way a plain LCG's are.
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    let refused = 0;
    for (let i = 0; i < 1000; i++) {
      const b = Buffer.from(AMDSEV);
      // Corrupt 1-4 bytes in the last 1.5 KiB, where the footer table and the SEV metadata live.
      for (let k = 0, n = 1 + rnd(4); k < n; k++) b[b.length - 1 - rnd(1536)] = rnd(256);
      try {
        snpLaunchDigest({ firmware: b, vcpus: 2, vcpuType: 'EPYC-v4', kernel: rnd(2) ? { kernel: Buffer.alloc(0) } : null });
      } catch (e) {
        expect(e, String(e)).toBeInstanceOf(SevkitError);
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(0);
  });

  it('vCPU inputs', () => {
    expect(code(() => snpLaunchDigest({ firmware: AMDSEV, vcpus: 0, vcpuType: 'EPYC-v4' }))).toBe('ERR_NUM_CPUS');
    expect(code(() => snpLaunchDigest({ firmware: AMDSEV, vcpus: 1 }))).toBe('ERR_VCPU_TYPE');
    expect(code(() => snpLaunchDigest({ firmware: AMDSEV, vcpus: 1, vcpuType: 'EPYC-v9000' }))).toBe('ERR_VCPU_TYPE');
    expect(code(() => resolveSnpVcpuSig({ vcpuFamily: 25, vcpuModel: 1 }))).toBe('ERR_VCPU_TYPE');
    expect(resolveSnpVcpuSig({ vcpuFamily: 25, vcpuModel: 1, vcpuStepping: 1 })).toBe(0xa00f11);
    expect(resolveSnpVcpuSig({}, 'gce')).toBe(0);
    expect(code(() => snpLaunchDigest({ firmware: AMDSEV, vcpus: 1, vcpuType: 'EPYC', vmmType: 'krun' as SnpVmmType }))).toBe('ERR_SNP_VMM_TYPE');
  });
});
