import { afterAll, describe, expect, it } from 'vitest';
import { sevkitEnv } from '../../lib/cli/env.js';
import fs from 'node:fs';
import path from 'node:path';
import {
  brandString,
  cpuidFromCpuinfo,
  decodeSevLeaf,
  familyModel,
  CpuidError,
  mapCpuid,
  openCpuid,
  parseCpuidJson,
  sevCpuInfo,
  sevLeaf,
  vendorString,
} from '../../lib/platform/cpuid.js';
import { CPU_PRESETS, cpuidFor } from '../../lib/sim/host-fixture.js';
import { cleanup, fixture, tempDir } from '../host/helpers.js';

afterAll(cleanup);

describe('CPUID file (SEVKIT_CPUID)', () => {
  it('reads the simulated EPYC 9004: C-bit 51, reduced-phys-bits 1, SEV+ES+SNP', async () => {
    const fx = fixture();
    const info = await sevCpuInfo({ file: fx.cpuidFile });
    expect(info.source).toBe('file');
    expect(info).toMatchObject({
      sme: true,
      sev: true,
      sevEs: true,
      snp: true,
      vmpl: true,
      cbitpos: 51,
      reducedPhysBits: 1,
      numVmpls: 4,
      maxAsids: 1006,
      minSevAsid: 100,
      sevAsids: 907,
      sevEsAsids: 99,
    });
  });

  it('reads the file option; the CLI reads SEVKIT_CPUID and passes it (the library ignores it)', async () => {
    const fx = fixture({ cpu: 'rome' });
    const old = process.env.SEVKIT_CPUID;
    process.env.SEVKIT_CPUID = fx.cpuidFile;
    try {
      const r = await openCpuid({ file: sevkitEnv().cpuidFile });
      expect(r.source).toBe('file');
      expect(vendorString(r)).toBe('AuthenticAMD');
      expect(sevLeaf(r).cbitpos).toBe(47);
      expect((await openCpuid({ noNative: true, readCpuinfo: () => '' })).source).not.toBe('file');
    } finally {
      if (old === undefined) delete process.env.SEVKIT_CPUID;
      else process.env.SEVKIT_CPUID = old;
    }
  });

  it('accepts hex-string registers and keys without a subleaf; missing leaves read as zero', () => {
    const m = parseCpuidJson('{"0x8000001f": ["0x3f", 51, "0x10", 1]}');
    const r = mapCpuid(m, 'file');
    expect(r.get(0x8000001f)).toEqual([0x3f, 51, 16, 1]);
    expect(r.get(0x80000002)).toEqual([0, 0, 0, 0]);
  });

  it.each([
    ['not json', /not valid JSON/],
    ['[]', /expected an object/],
    ['{"leaf": [1,2,3,4]}', /bad leaf key "leaf"/],
    ['{"0x1:0": [1,2,3]}', /leaf 0x1:0 must be \[eax, ebx, ecx, edx\]/],
    ['{"0x1:0": [1,2,3,-4]}', /leaf 0x1:0 edx: register value must be a u32/],
    ['{"0x1:0": [1,2,3,4294967296]}', /edx: register value must be a u32/],
  ])('rejects a malformed file %s with a typed one-line error', (text, re) => {
    expect(() => parseCpuidJson(text, 'f.json')).toThrow(CpuidError);
    expect(() => parseCpuidJson(text, 'f.json')).toThrow(re);
  });

  it('names the file when it cannot be read', async () => {
    const missing = path.join(tempDir(), 'nope.json');
    await expect(openCpuid({ file: missing })).rejects.toThrow(`${missing}: cannot read CPUID file: ENOENT`);
  });
});

describe('decoding', () => {
  it('decodes 0x8000001F fields per kernel-qemu.md §4.3', () => {
    const d = decodeSevLeaf([0b10110, 47 | (5 << 6) | (1 << 12), 509, 1]);
    expect(d).toMatchObject({
      sme: false,
      sev: true,
      pageFlush: true,
      sevEs: false,
      snp: true,
      vmpl: false,
      cbitpos: 47,
      reducedPhysBits: 5,
      numVmpls: 1,
      maxAsids: 509,
      minSevAsid: 1,
      sevAsids: 509,
      sevEsAsids: 0,
    });
  });

  it('counts no SEV ASIDs when the minimum exceeds the maximum', () => {
    expect(decodeSevLeaf([2, 51, 10, 11]).sevAsids).toBe(0);
    expect(decodeSevLeaf([2, 51, 10, 11]).sevEsAsids).toBe(10);
  });

  it('round-trips vendor, brand and family/model through the preset leaves', () => {
    for (const [name, def] of Object.entries(CPU_PRESETS)) {
      const r = mapCpuid(parseCpuidJson(JSON.stringify(cpuidFor(def))), 'file');
      expect(vendorString(r), name).toBe(def.vendor);
      expect(brandString(r), name).toBe(def.brand);
      if (def.vendor === 'AuthenticAMD') expect(familyModel(r), name).toMatchObject({ family: def.family, model: def.model });
    }
  });

  it('guards against out-of-range leaves only for real CPUID', () => {
    const m = new Map([
      ['0x80000000:0', [0x80000008, 0, 0, 0] as const],
      ['0x8000001f:0', [0xf, 51, 1, 1] as const],
    ]);
    expect(sevLeaf(mapCpuid(m, 'native')).sev).toBe(false);
    expect(sevLeaf(mapCpuid(m, 'file')).sev).toBe(true);
  });

  it('falls back to /proc/cpuinfo flags (without C-bit or ASIDs)', async () => {
    const root = tempDir();
    fs.mkdirSync(path.join(root, 'proc'));
    fs.writeFileSync(
      path.join(root, 'proc/cpuinfo'),
      'processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC 7763 64-Core Processor\nstepping\t: 1\nflags\t\t: fpu sme sev sev_es\n',
    );
    const r = await openCpuid({ file: '', readCpuinfo: () => fs.readFileSync(path.join(root, 'proc/cpuinfo'), 'utf8'), noNative: true });
    expect(r.source).toBe('cpuinfo');
    expect(vendorString(r)).toBe('AuthenticAMD');
    expect(brandString(r)).toBe('AMD EPYC 7763 64-Core Processor');
    expect(familyModel(r)).toMatchObject({ family: 25, model: 1 });
    expect(sevLeaf(r)).toMatchObject({ sme: true, sev: true, sevEs: true, snp: false, cbitpos: 0 });
    expect(cpuidFromCpuinfo('vendor_id : GenuineIntel\nflags : fpu vmx\n').get('0x8000001f:0')).toEqual([0, 0, 0, 0]);
  });
});

describe('fixture CPUID', () => {
  it('carries the processor signature in leaf 1 (Genoa 0x00A10F11) and 0x80000001', async () => {
    const r = await openCpuid({ file: fixture().cpuidFile });
    expect(r.get(1)[0]).toBe(0x00a10f11);
    expect(r.get(0x80000001)[0]).toBe(0x00a10f11);
    const intel = await openCpuid({ file: fixture({ cpu: 'intel' }).cpuidFile });
    expect(intel.get(1)[0]).toBe(0x000606a6);
    expect(intel.get(0x80000001)[0]).toBe(0);
  });
});
