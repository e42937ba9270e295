import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { buildReport, STATUS_SCHEMA, type StatusReport } from '../../lib/host/status.js';
import { CHECK_IDS, type GuestType } from '../../lib/host/checks.js';
import { FIXES } from '../../lib/host/fixes.js';
import { renderStatus } from '../../lib/host/render.js';
import type { HostFixtureSpec } from '../../lib/sim/host-fixture.js';
import type { HostFsOptions } from '../../lib/host/fs.js';
import type { StatusProbeOptions } from '../../lib/host/gather.js';
import { setBinding, type NativeBinding } from '../../lib/binding.js';
import { SevPlatform } from '../../lib/platform/platform.js';
import { cleanup, errnoError, fakePlatform, fixture, probeFixture } from './helpers.js';

afterAll(cleanup);
afterEach(() => setBinding(null));

async function report(
  spec: HostFixtureSpec = {},
  opts: StatusProbeOptions & { deny?: HostFsOptions['deny'] } = {},
  required: GuestType = 'sev',
): Promise<StatusReport> {
  return buildReport(await probeFixture(fixture(spec), opts), required);
}

const check = (r: StatusReport, id: string) => {
  const c = r.checks.find((x) => x.id === id);
  if (!c) throw new Error(`no check ${id}`);
  return c;
};
const ready = (r: StatusReport) => Object.fromEntries(Object.entries(r.verdicts).map(([k, v]) => [k, v.ready]));

describe('sev-status on the simulated EPYC 9004 host', () => {
  it('is all green: every check passes or is informational, every guest type ready', async () => {
    const r = await report();
    expect(r.schema).toBe(STATUS_SCHEMA);
    expect(r.checks.filter((c) => c.status !== 'pass' && c.status !== 'info')).toEqual([]);
    expect(ready(r)).toEqual({ sev: true, 'sev-es': true, 'sev-snp': true });
    expect(r.ready).toBe(true);
    expect(r.host.simulated).toBe(true);
    expect(r.cpu).toMatchObject({ cbitpos: 51, reducedPhysBits: 1, sev: true, sevEs: true, snp: true, syscfg: '0x3fc0000' });
    expect(r.firmware).toMatchObject({ available: true, apiVersion: '1.55', state: 'INIT', esEnabled: true, guestCount: 0 });
    for (const v of Object.values(r.verdicts)) expect(v).toEqual({ ready: true, reasons: [], fixes: [] });
  });

  it('lists every documented check id exactly once, in order', async () => {
    const r = await report();
    expect(r.checks.map((c) => c.id)).toEqual([...CHECK_IDS]);
  });

  it('keeps the --json schema stable (top-level and nested keys)', async () => {
    const r = JSON.parse(JSON.stringify(await report()));
    expect(Object.keys(r)).toEqual([
      'schema',
      'ready',
      'required',
      'host',
      'cpu',
      'kvm',
      'sevDevice',
      'memlock',
      'firmware',
      'qemu',
      'ovmf',
      'checks',
      'verdicts',
    ]);
    expect(Object.keys(r.host)).toEqual(['root', 'simulated', 'kernel', 'euid', 'cpuidSource']);
    expect(Object.keys(r.cpu)).toEqual([
      'vendor',
      'brand',
      'family',
      'model',
      'sme',
      'sev',
      'sevEs',
      'snp',
      'vmpl',
      'pageFlush',
      'cbitpos',
      'reducedPhysBits',
      'numVmpls',
      'maxAsids',
      'minSevAsid',
      'sevAsids',
      'sevEsAsids',
      'syscfg',
    ]);
    expect(Object.keys(r.kvm)).toEqual(['moduleLoaded', 'sev', 'sevEs', 'sevSnp', 'device']);
    expect(Object.keys(r.kvm.device)).toEqual(['path', 'readable', 'writable', 'apiVersion', 'apiVersionSource']);
    expect(Object.keys(r.sevDevice)).toEqual(['path', 'exists', 'readable', 'writable']);
    expect(Object.keys(r.memlock)).toEqual(['soft', 'hard']);
    expect(Object.keys(r.firmware)).toEqual([
      'device',
      'available',
      'apiMajor',
      'apiMinor',
      'build',
      'apiVersion',
      'state',
      'owner',
      'esEnabled',
      'guestCount',
      'error',
      'snp',
      'snpError',
    ]);
    expect(Object.keys(r.qemu)).toEqual(['command', 'found', 'version', 'banner', 'error', 'cached']);
    expect(Object.keys(r.ovmf)).toEqual(['dirs', 'packageVersion', 'images']);
    expect(Object.keys(r.ovmf.images[0])).toEqual(['path', 'size', 'guidTable', 'sevEsResetBlock', 'secretArea', 'kernelHashes', 'snpMetadata']);
    for (const c of r.checks) expect(Object.keys(c)).toEqual(['id', 'group', 'title', 'status', 'detail', 'fix', 'blocks']);
    expect(Object.keys(r.verdicts)).toEqual(['sev', 'sev-es', 'sev-snp']);
    expect(r.memlock).toEqual({ soft: 'unlimited', hard: 'unlimited' });
  });
});

describe('hosts without SEV: honest FAILs, no crash', () => {
  it('plain Intel host', async () => {
    const r = await report(
      { cpu: 'intel', kvmAmd: false, devSev: false, qemuVersion: '7.2.22', ovmf: 'plain' },
      { platform: fakePlatform(errnoError('ENOENT')) },
    );
    expect(check(r, 'cpu.vendor')).toMatchObject({ status: 'fail', detail: 'GenuineIntel', fix: FIXES.amdCpu });
    expect(check(r, 'cpu.sev').status).toBe('skip');
    expect(check(r, 'kernel.kvm-amd')).toMatchObject({ status: 'fail', fix: FIXES.kvmAmd });
    expect(check(r, 'device.sev')).toMatchObject({ status: 'fail', fix: FIXES.devSevMissing });
    expect(ready(r)).toEqual({ sev: false, 'sev-es': false, 'sev-snp': false });
    expect(r.verdicts.sev.reasons[0]).toBe('AMD CPU: GenuineIntel');
    expect(r.cpu).toMatchObject({ vendor: 'GenuineIntel', sev: false, cbitpos: 0 });
    expect(renderStatus(r)).toMatch(/SEV {6}not ready because AMD CPU: GenuineIntel \(\+\d+ more\)/);
  });

  it('AMD host without SEV', async () => {
    const r = await report(
      { cpu: 'amd-nosev', kvmAmd: { sev: 'N\n', sevEs: 'N\n', sevSnp: null }, devSev: false },
      { platform: fakePlatform(errnoError('ENOENT')) },
    );
    expect(check(r, 'cpu.vendor').status).toBe('pass');
    expect(check(r, 'cpu.epyc').status).toBe('pass');
    expect(check(r, 'cpu.sev')).toMatchObject({ status: 'fail', fix: FIXES.biosSev, blocks: ['sev', 'sev-es', 'sev-snp'] });
    expect(check(r, 'cpu.sev-es').status).toBe('skip');
    expect(check(r, 'kernel.sev')).toMatchObject({ status: 'fail', detail: expect.stringContaining('kvm_amd sev=N') });
    expect(ready(r)).toEqual({ sev: false, 'sev-es': false, 'sev-snp': false });
  });

  it('Ryzen: not an EPYC', async () => {
    const r = await report({ cpu: 'ryzen' });
    expect(check(r, 'cpu.epyc')).toMatchObject({ status: 'fail', fix: FIXES.epyc });
  });
});

type Case = {
  name: string;
  spec?: HostFixtureSpec;
  opts?: StatusProbeOptions & { deny?: HostFsOptions['deny'] };
  id: string;
  fix: string;
  notReady: GuestType[];
  detail?: RegExp;
};

const SNP_ONLY: GuestType[] = ['sev-snp'];
const ES_UP: GuestType[] = ['sev-es', 'sev-snp'];
const ALL: GuestType[] = ['sev', 'sev-es', 'sev-snp'];

const CASES: Case[] = [
  { name: 'SYSCFG memory encryption off (BIOS)', spec: { syscfg: 0x40000n }, id: 'cpu.sme', fix: FIXES.biosSme, notReady: ALL },
  { name: 'no SEV bit in CPUID', spec: { leaf1f: [0x1, 51 | (1 << 6), 1006, 100] }, id: 'cpu.sev', fix: FIXES.biosSev, notReady: ALL },
  { name: 'no SEV-ES bit', spec: { leaf1f: [0x17, 51 | (1 << 6), 1006, 100] }, id: 'cpu.sev-es', fix: FIXES.biosSevEs, notReady: ES_UP },
  {
    name: 'no SEV-ES ASIDs (limit 1)',
    spec: { leaf1f: [0x3f, 51 | (1 << 6), 1006, 1] },
    id: 'cpu.sev-es-asids',
    fix: FIXES.biosSevEsAsids,
    notReady: ES_UP,
    detail: /minimum SEV ASID is 1/,
  },
  { name: 'no plain SEV ASIDs', spec: { leaf1f: [0x3f, 51 | (1 << 6), 99, 100] }, id: 'cpu.sev-asids', fix: FIXES.biosSevAsids, notReady: ALL },
  { name: 'SNP disabled in SYSCFG', spec: { syscfg: 0x840000n }, id: 'cpu.snp', fix: FIXES.biosSnp, notReady: SNP_ONLY, detail: /SNPEn/ },
  { name: 'kvm_amd not loaded', spec: { kvmAmd: false }, id: 'kernel.kvm-amd', fix: FIXES.kvmAmd, notReady: ALL },
  {
    name: 'kvm_amd sev=N',
    spec: { kvmAmd: { sev: 'N\n' }, cmdline: 'ro mem_encrypt=off' },
    id: 'kernel.sev',
    fix: FIXES.kernelSev,
    notReady: ALL,
    detail: /kernel command line has mem_encrypt=off/,
  },
  { name: 'kvm_amd sev_es=N', spec: { kvmAmd: { sevEs: 'N\n' } }, id: 'kernel.sev-es', fix: FIXES.kernelSevEs, notReady: ES_UP },
  {
    name: 'kernel without kvm_amd sev',
    spec: { kvmAmd: { sev: null } },
    id: 'kernel.sev',
    fix: FIXES.kernelSevMissing,
    notReady: ALL,
    detail: /Linux 6\.12\.0-sim has no kvm_amd sev parameter/,
  },
  { name: 'kernel without kvm_amd sev_es', spec: { kvmAmd: { sevEs: null } }, id: 'kernel.sev-es', fix: FIXES.kernelEsTooOld, notReady: ES_UP },
  { name: 'kvm_amd sev_snp=N', spec: { kvmAmd: { sevSnp: 'N\n' } }, id: 'kernel.sev-snp', fix: FIXES.kernelSevSnp, notReady: SNP_ONLY },
  {
    name: 'kernel without sev_snp',
    spec: { kvmAmd: { sevSnp: null }, osrelease: '6.1.0-28-amd64' },
    id: 'kernel.sev-snp',
    fix: FIXES.kernelSnpTooOld,
    notReady: SNP_ONLY,
    detail: /Linux 6\.1\.0-28-amd64 has no kvm_amd sev_snp/,
  },
  { name: 'no /dev/sev', spec: { devSev: false }, id: 'device.sev', fix: FIXES.devSevMissing, notReady: ALL },
  {
    name: '/dev/sev not readable',
    opts: { deny: { '/dev/sev': { read: 'EACCES', write: 'EACCES' } } },
    id: 'device.sev-read',
    fix: FIXES.devSevAccess,
    notReady: ALL,
    detail: /Permission denied \(os error 13\)/,
  },
  {
    name: '/dev/sev not writable',
    opts: { deny: { '/dev/sev': { write: 'EACCES' } } },
    id: 'device.sev-write',
    fix: FIXES.devSevAccess,
    notReady: ALL,
    detail: /not by uid 1000: Permission denied/,
  },
  { name: 'no /dev/kvm', spec: { devKvm: false }, id: 'device.kvm', fix: FIXES.kvmAmd, notReady: ALL },
  { name: '/dev/kvm not writable', opts: { deny: { '/dev/kvm': { write: 'EACCES' } } }, id: 'device.kvm', fix: FIXES.kvmAccess, notReady: ALL },
  {
    name: 'PLATFORM_STATUS permission denied',
    opts: { platform: fakePlatform(errnoError('EACCES')) },
    id: 'firmware.status',
    fix: FIXES.devSevAccess,
    notReady: ALL,
  },
  {
    name: 'PLATFORM_STATUS firmware error',
    opts: { platform: fakePlatform(errnoError('EIO', { fwStatus: 0x13, fwStatusName: 'SEV_RET_HWSEV_RET_PLATFORM' })) },
    id: 'firmware.status',
    fix: FIXES.firmwareError,
    notReady: ALL,
    detail: /\[SEV_RET_HWSEV_RET_PLATFORM\]/,
  },
  {
    name: 'PLATFORM_STATUS timeout',
    opts: { platform: { status: () => new Promise(() => {}) }, timeoutMs: 50 },
    id: 'firmware.status',
    fix: FIXES.firmwareTimeout,
    notReady: ALL,
    detail: /did not answer within 50 ms/,
  },
  {
    name: 'addon missing',
    opts: { platform: fakePlatform(Object.assign(new Error('cannot load the sevkit native addon'), { code: 'ERR_SEVKIT_BINDING' })) },
    id: 'firmware.status',
    fix: FIXES.addon,
    notReady: ALL,
  },
  {
    name: 'firmware API too old',
    opts: { platform: fakePlatform({ apiMajor: 0, apiMinor: 16 }) },
    id: 'firmware.api',
    fix: FIXES.firmwareUpdate,
    notReady: ALL,
    detail: /0\.16 build 21: SEV launch measurement needs >= 0\.17/,
  },
  { name: 'firmware without SEV-ES', opts: { platform: fakePlatform({ esEnabled: false }) }, id: 'firmware.sev-es', fix: FIXES.firmwareEs, notReady: ES_UP },
  { name: 'no QEMU', spec: { qemuVersion: null }, id: 'userspace.qemu', fix: FIXES.qemu, notReady: ALL, detail: /not found/ },
  { name: 'QEMU 5.2 (no SEV-ES)', spec: { qemuVersion: '5.2.0' }, id: 'userspace.qemu-sev-es', fix: FIXES.qemuEs, notReady: ES_UP },
  { name: 'QEMU 7.2 (no SNP)', spec: { qemuVersion: '7.2.22' }, id: 'userspace.qemu-sev-snp', fix: FIXES.qemuSnp, notReady: SNP_ONLY },
  { name: 'no OVMF', spec: { ovmf: 'none' }, id: 'userspace.ovmf', fix: FIXES.ovmf, notReady: ALL },
  { name: 'OVMF without GUID table', spec: { ovmf: 'legacy' }, id: 'userspace.ovmf-sev-es', fix: FIXES.ovmfEs, notReady: ES_UP },
];

describe('each single failure names its fix and blocks only the guest types it must', () => {
  it.each(CASES)('$name', async ({ spec, opts, id, fix, notReady, detail }) => {
    const r = await report(spec ?? {}, opts ?? {});
    const c = check(r, id);
    expect(c.status).toBe('fail');
    expect(c.fix).toBe(fix);
    if (detail) expect(c.detail).toMatch(detail);
    const failing = r.checks.filter((x) => x.status === 'fail').map((x) => x.id);
    expect(failing[0]).toBe(id);
    for (const g of ['sev', 'sev-es', 'sev-snp'] as GuestType[]) {
      expect(r.verdicts[g].ready, `${g} ready`).toBe(!notReady.includes(g));
      if (notReady.includes(g)) expect(r.verdicts[g].fixes).toContain(fix);
    }
    expect(r.ready).toBe(!notReady.includes('sev'));
    const text = renderStatus(r);
    expect(text).toContain(`fix: ${fix}`);
  });

  it('a low memlock limit is a warning with its fix, not a blocker', async () => {
    const r = await report({ memlock: { soft: '8388608', hard: '8388608' } });
    expect(check(r, 'limits.memlock')).toMatchObject({ status: 'warn', fix: FIXES.memlock });
    expect(ready(r)).toEqual({ sev: true, 'sev-es': true, 'sev-snp': true });
    const asRoot = await report({ memlock: { soft: '8388608', hard: '8388608' } }, { euid: 0 });
    expect(check(asRoot, 'limits.memlock')).toMatchObject({ status: 'info', fix: null });
  });

  it('an unreadable SYSCFG MSR is reported but does not block (the kernel decides)', async () => {
    const r = await report({ syscfg: null });
    expect(check(r, 'cpu.sme')).toMatchObject({ status: 'info', detail: expect.stringContaining('No such file or directory') });
    expect(r.cpu.syscfg).toBeNull();
    expect(ready(r)).toEqual({ sev: true, 'sev-es': true, 'sev-snp': true });
  });

  it('an UNINIT platform is normal and does not judge the SEV-ES flag', async () => {
    const r = await report({}, { platform: fakePlatform({ state: 'UNINIT', esEnabled: false }) });
    expect(check(r, 'firmware.state')).toMatchObject({ status: 'info', detail: expect.stringMatching(/^UNINIT \(normal/) });
    expect(check(r, 'firmware.sev-es').status).toBe('info');
    expect(r.ready).toBe(true);
  });

  it('--require picks the verdict the exit code reports', async () => {
    const fx = fixture({ qemuVersion: '7.2.22' });
    const facts = await probeFixture(fx);
    expect(buildReport(facts, 'sev').ready).toBe(true);
    expect(buildReport(facts, 'sev-es').ready).toBe(true);
    expect(buildReport(facts, 'sev-snp').ready).toBe(false);
  });

  it('--no-firmware skips the firmware checks without blocking', async () => {
    const r = await report({}, { platform: null });
    expect(r.firmware).toBeNull();
    expect(r.checks.filter((c) => c.group === 'firmware').every((c) => c.status === 'skip')).toBe(true);
    expect(r.ready).toBe(true);
  });
});

describe('firmware view through the real SevPlatform over a fake binding', () => {
  function statusBuf(s: { major: number; minor: number; state: number; flags: number; build: number; guests: number }): Buffer {
    const b = Buffer.alloc(12);
    b.writeUInt8(s.major, 0);
    b.writeUInt8(s.minor, 1);
    b.writeUInt8(s.state, 2);
    b.writeUInt32LE(s.flags, 3);
    b.writeUInt8(s.build, 7);
    b.writeUInt32LE(s.guests, 8);
    return b;
  }
  function snpBuf(): Buffer {
    const b = Buffer.alloc(32);
    b.writeUInt8(1, 0);
    b.writeUInt8(55, 1);
    b.writeUInt8(1, 2);
    b.writeUInt8(1, 3);
    return b;
  }
  function fake(over: Partial<NativeBinding>): NativeBinding {
    return over as NativeBinding;
  }

  it('decodes PLATFORM_STATUS and SNP_PLATFORM_STATUS from the addon', async () => {
    setBinding(
      fake({
        platformStatus: async () => statusBuf({ major: 1, minor: 55, state: 2, flags: 0x101, build: 21, guests: 3 }),
        snpPlatformStatus: async () => snpBuf(),
      }),
    );
    const r = await report({}, { platform: new SevPlatform({ device: '/dev/sev' }) });
    expect(r.firmware).toMatchObject({
      available: true,
      apiVersion: '1.55',
      build: 21,
      state: 'WORKING',
      owner: 'external',
      esEnabled: true,
      guestCount: 3,
      error: null,
    });
    expect(r.firmware?.snp).toMatchObject({ apiMajor: 1, apiMinor: 55, state: 'INIT', rmpInitialized: true });
    expect(check(r, 'firmware.guests').detail).toBe('3 active');
    expect(check(r, 'firmware.owner').detail).toMatch(/^external/);
    expect(r.ready).toBe(true);
  });

  it('maps an addon firmware error (EIO + SEV_RET_*) to a failed check with the firmware status name', async () => {
    const eio = Object.assign(new Error('ioctl failed'), {
      code: 'EIO',
      errno: -5,
      syscall: 'ioctl',
      path: '/dev/sev',
      command: 'PLATFORM_STATUS',
      fwStatus: 1,
    });
    const einval = Object.assign(new Error('ioctl failed'), { code: 'EINVAL', errno: -22, syscall: 'ioctl', path: '/dev/sev', command: 'SNP_PLATFORM_STATUS' });
    setBinding(fake({ platformStatus: async () => Promise.reject(eio), snpPlatformStatus: async () => Promise.reject(einval) }));
    const r = await report({}, { platform: new SevPlatform({ device: '/dev/sev' }) });
    const c = check(r, 'firmware.status');
    expect(c.status).toBe('fail');
    expect(c.detail).toContain('SEV_RET_INVALID_PLATFORM_STATE');
    expect(c.fix).toBe(FIXES.firmwareError);
    expect(r.firmware).toMatchObject({ available: false, error: { code: 'EIO', fwStatus: 1, fwStatusName: 'SEV_RET_INVALID_PLATFORM_STATE' } });
    expect(r.firmware?.snpError).toMatchObject({ code: 'EINVAL' });
    expect(r.ready).toBe(false);
  });

  it('maps a permission error from open() to the udev fix', async () => {
    const eacces = Object.assign(new Error('open failed'), { code: 'EACCES', errno: -13, syscall: 'open', path: '/dev/sev', command: 'PLATFORM_STATUS' });
    setBinding(fake({ platformStatus: async () => Promise.reject(eacces), snpPlatformStatus: async () => Promise.reject(eacces) }));
    const r = await report({}, { platform: new SevPlatform({ device: '/dev/sev' }) });
    expect(check(r, 'firmware.status')).toMatchObject({ status: 'fail', fix: FIXES.devSevAccess });
  });
});

describe('rendering', () => {
  it('prints colours only when asked', async () => {
    const r = await report({ kvmAmd: { sevEs: 'N\n' } });
    const plain = renderStatus(r, false);
    const colored = renderStatus(r, true);
    // eslint-disable-next-line no-control-regex
    expect(plain).not.toMatch(/\x1b\[/);
    expect(colored).toContain('\x1b[31mFAIL\x1b[0m');
    expect(plain).toMatch(/\n {2}SEV {6}ready\n/);
    expect(plain).toMatch(/\n {2}SEV-ES {3}not ready because SEV-ES enabled in KVM: kvm_amd sev_es=N/);
  });
});

describe('SNP platform status summary', () => {
  it('summarizes SnpPlatformStatus fields on one line and keeps them all in JSON', async () => {
    const snp = {
      apiMajor: 1,
      apiMinor: 55,
      state: 'INIT',
      rmpInitialized: true,
      buildId: 21,
      guestCount: 2,
      reportedTcbVersion: 5192087420404760583n,
      maskChipId: false,
    };
    const r = await report({}, { platform: fakePlatform({}, snp as unknown as Record<string, unknown>) });
    expect(check(r, 'firmware.snp').detail).toBe('SNP API 1.55 build 21, state INIT, RMP initialized, 2 guests, reported TCB 0x480e000000000007');
    expect(r.firmware?.snp).toMatchObject({ reportedTcbVersion: '5192087420404760583', maskChipId: false });
  });
});
