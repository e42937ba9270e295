import { afterAll, describe, expect, it } from 'vitest';
import { buildReport, type StatusReport } from '../../lib/host/status.js';
import { CHECK_IDS } from '../../lib/host/checks.js';
import { FIXES } from '../../lib/host/fixes.js';
import { renderStatus } from '../../lib/host/render.js';
import { GENOA_SYSCFG, type HostFixtureSpec } from '../../lib/sim/host-fixture.js';
import { SYSCFG_SNP_EN } from '../../lib/host/probes.js';
import { SNP_FIXES, tcbText } from '../../lib/host/snp-readiness.js';
import type { StatusProbeOptions } from '../../lib/host/gather.js';
import { cleanup, errnoError, fakePlatform, fixture, probeFixture } from './helpers.js';

afterAll(cleanup);

/** SNP_PLATFORM_STATUS of a ready Genoa: SNP API 1.55 build 21, INIT, RMP initialized, TCB bl 7 / snp 14 / ucode 0x48. */
const READY_SNP = {
  apiMajor: 1,
  apiMinor: 55,
  state: 'INIT',
  rmpInitialized: true,
  buildId: 21,
  guestCount: 0,
  currentTcbVersion: 0x480e000000000007n,
  reportedTcbVersion: 0x480e000000000007n,
};
const SNP_IDS = CHECK_IDS.filter((id) => id.startsWith('snp.'));

async function report(spec: HostFixtureSpec = {}, opts: StatusProbeOptions = {}, snp: Record<string, unknown> | Error = READY_SNP): Promise<StatusReport> {
  return buildReport(await probeFixture(fixture(spec), { platform: fakePlatform({}, snp), ...opts }), 'sev-snp');
}
const check = (r: StatusReport, id: string) => {
  const c = r.checks.find((x) => x.id === id);
  if (!c) throw new Error(`no check ${id}`);
  return c;
};
const ready = (r: StatusReport) => Object.fromEntries(Object.entries(r.verdicts).map(([k, v]) => [k, v.ready]));
const failing = (r: StatusReport) => r.checks.filter((c) => c.status === 'fail').map((c) => c.id);

describe('SEV-SNP readiness', () => {
  it('a ready Genoa host: every SNP check passes, with the firmware API, build and TCB shown', async () => {
    const r = await report({ cpuinfoFlags: ['fpu', 'sme', 'sev', 'sev_es', 'sev_snp'] });
    expect(r.checks.filter((c) => c.group === 'snp').map((c) => [c.id, c.status])).toEqual(SNP_IDS.map((id) => [id, 'pass']));
    expect(r.ready).toBe(true);
    expect(ready(r)).toEqual({ sev: true, 'sev-es': true, 'sev-snp': true });
    expect(check(r, 'snp.cpu').detail).toBe('family 0x19 (Genoa or later)');
    expect(check(r, 'snp.bios').detail).toBe('SYSCFG SNPEn set, RMP table 0x7ee00000..0x8f0fffff (259 MiB), sev_snp in /proc/cpuinfo');
    expect(check(r, 'snp.iommu').detail).toBe('1 IOMMU (ivhd0)');
    expect(check(r, 'snp.init').detail).toBe('state INIT, RMP initialized, 0 SNP guests');
    expect(check(r, 'snp.firmware').detail).toBe(
      'SNP API 1.55 build 21 (>= 1.51); current TCB bootloader 7 tee 0 snp 14 microcode 72; reported TCB bootloader 7 tee 0 snp 14 microcode 72',
    );
    expect(renderStatus(r)).toMatch(/\nSEV-SNP readiness \(BIOS\/RMP, IOMMU, SNP_INIT, SNP firmware\)\n {2}\[ PASS \] SNP-capable CPU generation/);
  });

  it('SNP disabled in BIOS: the BIOS check fails with the BIOS fix; SEV and SEV-ES stay ready', async () => {
    const r = await report(
      { syscfg: GENOA_SYSCFG & ~SYSCFG_SNP_EN, rmp: null, kvmAmd: { sevSnp: 'N\n' }, cpuinfoFlags: ['sme', 'sev', 'sev_es'] },
      {},
      errnoError('EINVAL'),
    );
    expect(check(r, 'snp.bios')).toMatchObject({
      status: 'fail',
      detail: 'SYSCFG SNPEn (bit 24) clear; no RMP table (RMP_BASE 0x0, RMP_END 0x0); /proc/cpuinfo has no sev_snp flag (the kernel disabled SNP)',
      fix: SNP_FIXES.bios,
      blocks: ['sev-snp'],
    });
    expect(check(r, 'snp.init')).toMatchObject({ status: 'fail', fix: SNP_FIXES.init });
    expect(check(r, 'snp.init').detail).toMatch(/refused \(EINVAL\): SNP is not initialized/);
    expect(check(r, 'kernel.sev-snp')).toMatchObject({ status: 'fail', fix: FIXES.kernelSevSnp });
    expect(check(r, 'cpu.snp')).toMatchObject({ status: 'fail', fix: FIXES.biosSnp });
    expect(ready(r)).toEqual({ sev: true, 'sev-es': true, 'sev-snp': false });
    expect(r.verdicts['sev-snp'].fixes).toContain(SNP_FIXES.bios);
    // Every failure carries a fix line in the tree.
    const text = renderStatus(r);
    for (const c of r.checks.filter((x) => x.status === 'fail')) expect(text).toContain(`${c.title}: ${c.detail}\n           fix: ${c.fix}`);
  });

  it('kvm_amd without sev_snp (a 6.6 kernel): the kernel check names the kernel to install', async () => {
    const r = await report({ kvmAmd: { sevSnp: null }, osrelease: '6.6.0-sim' }, {}, errnoError('EINVAL'));
    expect(check(r, 'kernel.sev-snp')).toMatchObject({
      status: 'fail',
      detail: 'Linux 6.6.0-sim has no kvm_amd sev_snp parameter',
      fix: FIXES.kernelSnpTooOld,
      blocks: ['sev-snp'],
    });
    expect(check(r, 'snp.init').status).toBe('fail');
    expect(check(r, 'snp.bios').status).toBe('pass'); // the BIOS did its part
    expect(failing(r).sort()).toEqual(['kernel.sev-snp', 'snp.init']);
    expect(ready(r)).toEqual({ sev: true, 'sev-es': true, 'sev-snp': false });
  });

  it("Debian's QEMU 7.2: only SEV-SNP is blocked, with the upgrade fix", async () => {
    const r = await report({ qemuVersion: '7.2.22' });
    expect(check(r, 'userspace.qemu-sev-snp')).toMatchObject({
      status: 'fail',
      detail: '7.2.22 < 9.1: no sev-snp-guest object',
      fix: FIXES.qemuSnp,
      blocks: ['sev-snp'],
    });
    expect(failing(r)).toEqual(['userspace.qemu-sev-snp']);
    expect(ready(r)).toEqual({ sev: true, 'sev-es': true, 'sev-snp': false });
    expect(r.ready).toBe(false);
  });

  it('Rome: no SNP whatever the BIOS says, with the hardware fix', async () => {
    const r = await report({ cpu: 'rome', kvmAmd: { sevSnp: 'N\n' } }, {}, errnoError('EINVAL'));
    expect(check(r, 'snp.cpu')).toMatchObject({ status: 'fail', detail: 'family 0x17 model 0x31 is older than EPYC 7003 (Milan)', fix: SNP_FIXES.generation });
    expect(check(r, 'snp.bios').status).toBe('skip');
    expect(check(r, 'snp.iommu').status).toBe('skip');
  });

  it('the BIOS set up the RMP but the kernel cleared sev_snp: the kernel fix, not the BIOS one', async () => {
    const r = await report({ cpuinfoFlags: ['sme', 'sev', 'sev_es'] });
    expect(check(r, 'snp.bios')).toMatchObject({ status: 'fail', fix: SNP_FIXES.kernelRmp });
  });

  it('IOMMU off: fails with the IOMMU fix and names amd_iommu=off from the command line', async () => {
    const r = await report({ iommu: false, cmdline: 'root=/dev/sda1 amd_iommu=off kvm_amd.sev_snp=1' });
    expect(check(r, 'snp.iommu')).toMatchObject({ status: 'fail', detail: 'no /sys/class/iommu; kernel command line has amd_iommu=off', fix: SNP_FIXES.iommu });
  });

  it('SNP_INIT not done, RMP not initialized, or an old SNP firmware: each fails with its fix', async () => {
    const uninit = await report({}, {}, { ...READY_SNP, state: 'UNINIT', rmpInitialized: false });
    expect(check(uninit, 'snp.init')).toMatchObject({ status: 'fail', detail: expect.stringMatching(/UNINIT: SNP_INIT has not run/), fix: SNP_FIXES.init });
    const noRmp = await report({}, {}, { ...READY_SNP, rmpInitialized: false });
    expect(check(noRmp, 'snp.init')).toMatchObject({ status: 'fail', detail: 'SNP state INIT but the RMP is not initialized' });
    const old = await report({}, {}, { ...READY_SNP, apiMinor: 49 });
    expect(check(old, 'snp.firmware')).toMatchObject({ status: 'fail', fix: SNP_FIXES.firmware });
    expect(check(old, 'snp.firmware').detail).toMatch(/^SNP API 1\.49 build 21 < 1\.51; current TCB/);
    const hostile = await report({}, {}, { ...READY_SNP, apiMajor: 257, apiMinor: 0 });
    expect(check(hostile, 'snp.firmware')).toMatchObject({ status: 'fail', detail: expect.stringMatching(/not two bytes/) });
    const timedOut = await report({}, {}, Object.assign(new Error('SNP_PLATFORM_STATUS on /dev/sev did not answer'), { code: 'ETIMEDOUT' }));
    expect(check(timedOut, 'snp.init')).toMatchObject({ status: 'fail', detail: expect.stringMatching(/did not answer/) });
  });

  it('unreadable MSRs (not root, no msr module): the BIOS check says it cannot tell instead of guessing', async () => {
    const r = await report({ syscfg: null });
    expect(check(r, 'snp.bios')).toMatchObject({ status: 'info' });
    expect(check(r, 'snp.bios').detail).toMatch(/^cannot tell: MSRs unreadable/);
    expect(ready(r)['sev-snp']).toBe(true);
  });

  it('--no-firmware and an addon without SNP_PLATFORM_STATUS skip the firmware checks', async () => {
    const r = await report({}, { platform: null });
    expect(['snp.init', 'snp.firmware'].map((id) => check(r, id).status)).toEqual(['skip', 'skip']);
    const noSnp = await report({}, { platform: { status: fakePlatform().status } });
    expect(check(noSnp, 'snp.init')).toMatchObject({ status: 'skip', detail: expect.stringMatching(/offers no SNP_PLATFORM_STATUS/) });
  });

  it('decodes the TCB by product layout', () => {
    expect(tcbText(0x480e000000000007n, 0x19)).toBe('bootloader 7 tee 0 snp 14 microcode 72');
    // Turin: fmc, bootloader, tee, snp, 0, 0, 0, microcode.
    expect(tcbText(0x4800000003020105n, 0x1a)).toBe('fmc 5 bootloader 1 tee 2 snp 3 microcode 72');
  });
});
