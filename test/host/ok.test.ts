import { afterAll, describe, expect, it } from 'vitest';
import { HostFs } from '../../lib/host/fs.js';
import { probeOkFacts } from '../../lib/host/gather.js';
import { detectOkGeneration, formatOkLine, runOk, type OkGeneration } from '../../lib/host/okTree.js';
import { mapCpuid, parseCpuidJson } from '../../lib/platform/cpuid.js';
import { CPU_PRESETS, cpuidFor, type HostFixtureSpec } from '../../lib/sim/host-fixture.js';
import type { HostFsOptions } from '../../lib/host/fs.js';
import { cleanup, fixture } from './helpers.js';

afterAll(cleanup);

async function okLines(spec: HostFixtureSpec, gen?: OkGeneration, deny?: HostFsOptions['deny']) {
  const fx = fixture(spec);
  const facts = await probeOkFacts({ fs: new HostFs(fx.root, { deny }), cpuidFile: fx.cpuidFile });
  const report = runOk(facts, gen);
  return { report, text: report.lines.map((l) => formatOkLine(l)) };
}

describe('sevkit ok (sevctl ok tree)', () => {
  it('reproduces sevctl’s documented Rome example byte for byte (sev-formats.md §8.3)', async () => {
    const { report, text } = await okLines({ cpu: 'rome', memlock: { soft: '8388608', hard: '8388608' } });
    expect(report.generation).toBe('es');
    expect(report.failed).toBe(false);
    expect(text.join('\n')).toBe(
      [
        '[ PASS ] - AMD CPU',
        '[ PASS ]   - Microcode support',
        '[ PASS ]   - Secure Memory Encryption (SME)',
        '[ PASS ]   - Secure Encrypted Virtualization (SEV)',
        '[ PASS ]     - Encrypted State (SEV-ES)',
        '[ SKIP ]     - Secure Nested Paging (SEV-SNP)',
        '[ SKIP ]       - VM Permission Levels',
        '[ SKIP ]         - Number of VMPLs',
        '[ PASS ]     - Physical address bit reduction: 5',
        '[ PASS ]     - C-bit location: 47',
        '[ PASS ]     - Number of encrypted guests supported simultaneously: 509',
        '[ PASS ]     - Minimum ASID value for SEV-enabled, SEV-ES disabled guest: 1',
        '[ PASS ]     - SEV enabled in KVM: enabled',
        '[ PASS ]     - SEV-ES enabled in KVM: enabled',
        '[ PASS ]     - Reading /dev/sev: /dev/sev readable',
        '[ PASS ]     - Writing /dev/sev: /dev/sev writable',
        '[ PASS ]   - Page flush MSR: DISABLED',
        '[ PASS ] - KVM supported: API version: 12',
        '[ PASS ] - Memlock resource limit: Soft: 8388608 | Hard: 8388608',
      ].join('\n'),
    );
  });

  it('passes everything on the simulated EPYC 9004 host (SNP detected)', async () => {
    const { report, text } = await okLines({});
    expect(report.generation).toBe('snp');
    expect(report.failed).toBe(false);
    expect(text).toContain('[ PASS ]         - Number of VMPLs: 4');
    expect(text).toContain('[ PASS ]     - C-bit location: 51');
    expect(text).toContain('[ PASS ]     - Physical address bit reduction: 1');
    expect(text).toContain('[ PASS ]   - Page flush MSR: ENABLED');
    expect(text.at(-1)).toBe('[ PASS ] - Memlock resource limit: Soft: 18446744073709551615 | Hard: 18446744073709551615');
    expect(text.filter((l) => !l.startsWith('[ PASS ]'))).toEqual([]);
  });

  it('on an Intel host: AMD CPU fails, every descendant is SKIP with its test name, no crash', async () => {
    const { report, text } = await okLines({ cpu: 'intel', kvmAmd: false, devSev: false, memlock: { soft: '65536', hard: '65536' } });
    expect(report.failed).toBe(true);
    expect(report.generation).toBe('snp');
    expect(text).toEqual([
      '[ FAIL ] - AMD CPU',
      '[ SKIP ]   - Microcode support',
      '[ SKIP ]   - Secure Memory Encryption (SME)',
      '[ SKIP ]   - Secure Encrypted Virtualization (SEV)',
      '[ SKIP ]     - Encrypted State (SEV-ES)',
      '[ SKIP ]     - Secure Nested Paging (SEV-SNP)',
      '[ SKIP ]       - VM Permission Levels',
      '[ SKIP ]         - Number of VMPLs',
      '[ SKIP ]     - Physical address bit reduction',
      '[ SKIP ]     - C-bit location',
      '[ SKIP ]     - Number of encrypted guests supported simultaneously',
      '[ SKIP ]     - Minimum ASID value for SEV-enabled, SEV-ES disabled guest',
      '[ SKIP ]     - SEV enabled in KVM',
      '[ SKIP ]     - SEV-ES enabled in KVM',
      '[ SKIP ]     - /dev/sev readable',
      '[ SKIP ]     - /dev/sev writable',
      '[ SKIP ]   - Page flush MSR',
      '[ PASS ] - KVM supported: API version: 12',
      '[ PASS ] - Memlock resource limit: Soft: 65536 | Hard: 65536',
    ]);
  });

  it('on an AMD host without SEV: SME and SEV fail, their children skip', async () => {
    const { report, text } = await okLines({ cpu: 'amd-nosev', kvmAmd: { sev: 'N\n', sevEs: 'N\n', sevSnp: null }, devSev: false });
    expect(report.failed).toBe(true);
    expect(text.slice(0, 5)).toEqual([
      '[ PASS ] - AMD CPU',
      '[ PASS ]   - Microcode support',
      '[ FAIL ]   - Secure Memory Encryption (SME)',
      '[ FAIL ]   - Secure Encrypted Virtualization (SEV)',
      '[ SKIP ]     - Encrypted State (SEV-ES)',
    ]);
    expect(text).toContain('[ SKIP ]     - SEV enabled in KVM');
    expect(text).toContain('[ PASS ]   - Page flush MSR: DISABLED');
  });

  it('mask sev skips the ES and SNP tests (and the SEV-ES KVM parameter)', async () => {
    const { report, text } = await okLines({}, 'sev');
    expect(report.failed).toBe(false);
    expect(text).toContain('[ SKIP ]     - Encrypted State (SEV-ES)');
    expect(text).toContain('[ SKIP ]     - Secure Nested Paging (SEV-SNP)');
    expect(text).toContain('[ SKIP ]       - VM Permission Levels');
    expect(text).toContain('[ SKIP ]     - SEV-ES enabled in KVM');
    expect(text).toContain('[ PASS ]     - SEV enabled in KVM: enabled');
  });

  it.each<[string, HostFixtureSpec, HostFsOptions['deny'] | undefined, string]>([
    ['sev=N', { kvmAmd: { sev: 'N\n' } }, undefined, '[ FAIL ]     - SEV enabled in KVM: Error - contents read from /sys/module/kvm_amd/parameters/sev: N'],
    [
      'sev_es missing',
      { kvmAmd: { sevEs: null } },
      undefined,
      '[ FAIL ]     - SEV-ES enabled in KVM: Error - /sys/module/kvm_amd/parameters/sev_es does not exist',
    ],
    [
      'sev unreadable',
      {},
      { '/sys/module/kvm_amd/parameters/sev': { read: 'EACCES' } },
      '[ FAIL ]     - SEV enabled in KVM: Error - (unable to read /sys/module/kvm_amd/parameters/sev): Permission denied (os error 13)',
    ],
    [
      '/dev/sev not readable',
      {},
      { '/dev/sev': { read: 'EACCES' } },
      '[ FAIL ]     - Reading /dev/sev: /dev/sev not readable: Permission denied (os error 13)',
    ],
    [
      '/dev/sev not writable',
      {},
      { '/dev/sev': { write: 'EACCES' } },
      '[ FAIL ]     - Writing /dev/sev: /dev/sev not writable: Permission denied (os error 13)',
    ],
    ['/dev/sev missing', { devSev: false }, undefined, '[ FAIL ]     - Reading /dev/sev: /dev/sev not readable: No such file or directory (os error 2)'],
    ['no /dev/kvm', { devKvm: false }, undefined, '[ FAIL ] - KVM supported: Error reading /dev/kvm: (No such file or directory (os error 2))'],
    ['SYSCFG unreadable', { syscfg: null }, undefined, '[ FAIL ]   - Secure Memory Encryption (SME)'],
    ['SNP disabled in SYSCFG', { syscfg: 0x840000n }, undefined, '[ FAIL ]     - Secure Nested Paging (SEV-SNP)'],
  ])('%s → one FAIL line in sevctl wording', async (_name, spec, deny, line) => {
    const { report, text } = await okLines(spec, undefined, deny);
    expect(report.failed).toBe(true);
    expect(text).toContain(line);
  });

  it('a failed SNP test skips its VMPL subtree', async () => {
    const { text } = await okLines({ syscfg: 0x840000n });
    expect(text).toContain('[ SKIP ]       - VM Permission Levels');
    expect(text).toContain('[ SKIP ]         - Number of VMPLs');
  });

  it('detects the generation like sevctl', () => {
    const gen = (family: number, model: number) =>
      detectOkGeneration(mapCpuid(parseCpuidJson(JSON.stringify(cpuidFor({ ...CPU_PRESETS.rome, family, model }))), 'file'));
    expect(gen(0x17, 0x01)).toBe('sev');
    expect(gen(0x17, 0x30)).toBe('sev');
    expect(gen(0x17, 0x31)).toBe('es');
    expect(gen(0x17, 0x3f)).toBe('es');
    expect(gen(0x17, 0x71)).toBe('snp');
    expect(gen(0x19, 0x11)).toBe('snp');
    expect(gen(0x1a, 0x02)).toBe('snp');
    expect(gen(0x15, 0x01)).toBe('snp');
  });

  it('colours like sevctl only when asked', () => {
    expect(formatOkLine({ level: 2, status: 'PASS', name: 'Page flush MSR', message: 'DISABLED', messageColor: 'yellow' }, true)).toBe(
      '[ \x1b[38;5;2mPASS\x1b[0m ]   - Page flush MSR: \x1b[38;5;3mDISABLED\x1b[0m',
    );
    expect(formatOkLine({ level: 0, status: 'FAIL', name: 'AMD CPU' }, true)).toBe('[ \x1b[38;5;1mFAIL\x1b[0m ] - AMD CPU');
    expect(formatOkLine({ level: 0, status: 'SKIP', name: 'x' }, false)).toBe('[ SKIP ] - x');
  });
});
