/**
 * `sevctl ok` re-implemented over the host facts: the same test tree, mask
 * selection, line format and failure rule (sev-formats.md §8). Pure: the facts
 * come from probes.ts, so the tree can be tested against fixtures line by line.
 */
import { brandString, familyModel, vendorString, type CpuidReader } from '../platform/cpuid.js';
import type { DevSevFact, KvmAmdFact, KvmFact, MemlockFact, MsrFact, ParamFact } from './probes.js';
import { SYSCFG_MEM_ENCRYPT, SYSCFG_SNP_EN, SYSCFG_VMPL_EN } from './probes.js';

export const MASK_SEV = 1;
export const MASK_ES = 2;
export const MASK_SNP = 4;

/** The SEV generation `sevkit ok` tests for: which part of sevctl's test tree runs. */
export type OkGeneration = 'sev' | 'es' | 'snp';

export const OK_MASKS: Record<OkGeneration, number> = {
  sev: MASK_SEV,
  es: MASK_SEV | MASK_ES,
  snp: MASK_SEV | MASK_ES | MASK_SNP,
};

/**
 * sevctl's generation detection from CPUID 0x80000001: Naples/Rome SEV, later Rome
 * models ES, family 0x19/0x1A SNP; anything it cannot classify defaults to SNP.
 */
export function detectOkGeneration(cpuid: CpuidReader): OkGeneration {
  const { family, model } = familyModel(cpuid);
  if (family === 0x17) {
    if (model >= 0x01 && model <= 0x30) return 'sev';
    if (model >= 0x31 && model <= 0x3f) return 'es';
    return 'snp';
  }
  return 'snp';
}

/** The host facts sevctl's `ok` tests read. */
export interface OkFacts {
  cpuid: CpuidReader;
  syscfg: MsrFact;
  kvmAmd: KvmAmdFact;
  devSev: DevSevFact;
  kvm: KvmFact;
  memlock: MemlockFact;
}

/** The outcome of one `ok` test line, as sevctl prints it. */
export type OkStatus = 'PASS' | 'FAIL' | 'SKIP';

/** One line of the `ok` tree: its depth, status, name and optional message. */
export interface OkLine {
  level: number;
  status: OkStatus;
  name: string;
  message?: string;
  /** sevctl colours only the Page-flush message (green ENABLED / yellow DISABLED). */
  messageColor?: 'green' | 'yellow';
}

interface Result {
  ok: boolean;
  name: string;
  message?: string;
  messageColor?: 'green' | 'yellow';
}

interface OkTest {
  name: string;
  mask: number;
  run: (f: OkFacts) => Result;
  sub: OkTest[];
}

function leaf1f(f: OkFacts) {
  const [eax, ebx, ecx, edx] = f.cpuid.get(0x8000001f);
  return { eax, ebx, ecx, edx };
}

/** sevctl reads SYSCFG and treats an unreadable MSR as 0. */
function syscfgBit(f: OkFacts, bit: bigint): boolean {
  return f.syscfg.value !== null && (f.syscfg.value & bit) !== 0n;
}

function paramResult(name: string, p: ParamFact): Result {
  switch (p.state) {
    case 'enabled':
      return { ok: true, name, message: 'enabled' };
    case 'disabled':
      return { ok: false, name, message: `Error - contents read from ${p.path}: ${p.value}` };
    case 'error':
      return { ok: false, name, message: `Error - (unable to read ${p.path}): ${p.error?.text}` };
    default:
      return { ok: false, name, message: `Error - ${p.path} does not exist` };
  }
}

const value =
  (name: string, v: number): ((f: OkFacts) => Result) =>
  () => ({ ok: true, name, message: String(v >>> 0) });

function tree(): OkTest[] {
  const valueTest = (name: string, pick: (r: ReturnType<typeof leaf1f>) => number): OkTest => ({
    name,
    mask: MASK_SEV,
    run: (f) => value(name, pick(leaf1f(f)))(f),
    sub: [],
  });
  // sevctl opens /dev/sev once for reading and once for writing; its line names the verb.
  const devSevAccess = (access: 'readable' | 'writable', verb: string): OkTest => ({
    name: `/dev/sev ${access}`,
    mask: MASK_SEV,
    run: (f) => {
      const r = f.devSev[access];
      return r.ok
        ? { ok: true, name: `${verb} /dev/sev`, message: `/dev/sev ${access}` }
        : { ok: false, name: `${verb} /dev/sev`, message: `/dev/sev not ${access}: ${r.error.text}` };
    },
    sub: [],
  });
  return [
    {
      name: 'AMD CPU',
      mask: MASK_SEV,
      run: (f) => ({ ok: vendorString(f.cpuid) === 'AuthenticAMD', name: 'AMD CPU' }),
      sub: [
        {
          name: 'Microcode support',
          mask: MASK_SEV,
          run: (f) => ({ ok: brandString(f.cpuid).toUpperCase().includes('EPYC'), name: 'Microcode support' }),
          sub: [],
        },
        {
          name: 'Secure Memory Encryption (SME)',
          mask: MASK_SEV,
          run: (f) => ({ ok: (leaf1f(f).eax & 1) !== 0 && syscfgBit(f, SYSCFG_MEM_ENCRYPT), name: 'Secure Memory Encryption (SME)' }),
          sub: [],
        },
        {
          name: 'Secure Encrypted Virtualization (SEV)',
          mask: MASK_SEV,
          run: (f) => ({ ok: (leaf1f(f).eax & 2) !== 0, name: 'Secure Encrypted Virtualization (SEV)' }),
          sub: [
            {
              name: 'Encrypted State (SEV-ES)',
              mask: MASK_ES,
              run: (f) => ({ ok: (leaf1f(f).eax & 8) !== 0, name: 'Encrypted State (SEV-ES)' }),
              sub: [],
            },
            {
              name: 'Secure Nested Paging (SEV-SNP)',
              mask: MASK_SNP,
              run: (f) => ({ ok: (leaf1f(f).eax & 16) !== 0 && syscfgBit(f, SYSCFG_SNP_EN), name: 'Secure Nested Paging (SEV-SNP)' }),
              sub: [
                {
                  name: 'VM Permission Levels',
                  mask: MASK_SNP,
                  run: (f) => ({ ok: (leaf1f(f).eax & 32) !== 0 && syscfgBit(f, SYSCFG_VMPL_EN), name: 'VM Permission Levels' }),
                  sub: [
                    {
                      name: 'Number of VMPLs',
                      mask: MASK_SNP,
                      run: (f) => ({ ok: true, name: 'Number of VMPLs', message: String((leaf1f(f).ebx >>> 12) & 0xf) }),
                      sub: [],
                    },
                  ],
                },
              ],
            },
            valueTest('Physical address bit reduction', (r) => (r.ebx >>> 6) & 0x3f),
            valueTest('C-bit location', (r) => r.ebx & 0x3f),
            valueTest('Number of encrypted guests supported simultaneously', (r) => r.ecx),
            valueTest('Minimum ASID value for SEV-enabled, SEV-ES disabled guest', (r) => r.edx),
            { name: 'SEV enabled in KVM', mask: MASK_SEV, run: (f) => paramResult('SEV enabled in KVM', f.kvmAmd.sev), sub: [] },
            { name: 'SEV-ES enabled in KVM', mask: MASK_ES, run: (f) => paramResult('SEV-ES enabled in KVM', f.kvmAmd.sevEs), sub: [] },
            devSevAccess('readable', 'Reading'),
            devSevAccess('writable', 'Writing'),
          ],
        },
        {
          name: 'Page flush MSR',
          mask: MASK_SEV,
          run: (f) =>
            (leaf1f(f).eax & 4) !== 0
              ? { ok: true, name: 'Page flush MSR', message: 'ENABLED', messageColor: 'green' }
              : { ok: true, name: 'Page flush MSR', message: 'DISABLED', messageColor: 'yellow' },
          sub: [],
        },
      ],
    },
    {
      name: 'KVM Support',
      mask: MASK_SEV,
      run: (f) => {
        if (!f.kvm.open.ok) return { ok: false, name: 'KVM supported', message: `Error reading /dev/kvm: (${f.kvm.open.error.text})` };
        if (f.kvm.apiVersion === null) return { ok: false, name: 'KVM supported', message: 'Error - accessing KVM device node failed' };
        return { ok: true, name: 'KVM supported', message: `API version: ${f.kvm.apiVersion}` };
      },
      sub: [],
    },
    {
      name: 'memlock limit',
      mask: MASK_SEV,
      run: (f) =>
        f.memlock.soft === null || f.memlock.hard === null
          ? { ok: false, name: 'Memlock resource limit', message: `Error - ${f.memlock.error}` }
          : { ok: true, name: 'Memlock resource limit', message: `Soft: ${f.memlock.soft} | Hard: ${f.memlock.hard}` },
      sub: [],
    },
  ];
}

function skipAll(tests: OkTest[], level: number, out: OkLine[]): void {
  for (const t of tests) {
    out.push({ level, status: 'SKIP', name: t.name });
    skipAll(t.sub, level + 2, out);
  }
}

function runTests(tests: OkTest[], level: number, mask: number, f: OkFacts, out: OkLine[]): boolean {
  let failed = false;
  for (const t of tests) {
    if ((t.mask & mask) !== t.mask) {
      out.push({ level, status: 'SKIP', name: t.name });
      skipAll(t.sub, level + 2, out);
      continue;
    }
    const r = t.run(f);
    const line: OkLine = { level, status: r.ok ? 'PASS' : 'FAIL', name: r.name };
    if (r.message !== undefined) line.message = r.message;
    if (r.messageColor) line.messageColor = r.messageColor;
    out.push(line);
    if (r.ok) {
      if (runTests(t.sub, level + 2, mask, f, out)) failed = true;
    } else {
      failed = true;
      skipAll(t.sub, level + 2, out);
    }
  }
  return failed;
}

/** The result of runOk: the generation tested, the lines in print order, and whether any test failed. */
export interface OkReport {
  generation: OkGeneration;
  /** Whether the generation came from the argument or CPUID detection. */
  detected: boolean;
  lines: OkLine[];
  failed: boolean;
}

/**
 * Runs sevctl's `ok` test tree over the facts for a generation (default: detected from CPUID); pure, never
 * throws on host state.
 */
export function runOk(facts: OkFacts, generation?: OkGeneration): OkReport {
  const gen = generation ?? detectOkGeneration(facts.cpuid);
  const lines: OkLine[] = [];
  const failed = runTests(tree(), 0, OK_MASKS[gen], facts, lines);
  return { generation: gen, detected: generation === undefined, lines, failed };
}

/** sevctl's colours (the `colorful` crate's 256-colour codes). */
const ANSI = { green: '\x1b[38;5;2m', red: '\x1b[38;5;1m', yellow: '\x1b[38;5;3m', reset: '\x1b[0m' } as const;
const STATUS_COLOR: Record<OkStatus, keyof typeof ANSI> = { PASS: 'green', FAIL: 'red', SKIP: 'yellow' };

/** `[ PASS ]   - name: message`, coloured like sevctl when `color`. */
export function formatOkLine(line: OkLine, color = false): string {
  const paint = (c: keyof typeof ANSI, s: string) => (color ? `${ANSI[c]}${s}${ANSI.reset}` : s);
  const msg = line.message === undefined ? '' : `: ${line.messageColor ? paint(line.messageColor, line.message) : line.message}`;
  return `[ ${paint(STATUS_COLOR[line.status], line.status)} ] ${' '.repeat(line.level)}- ${line.name}${msg}`;
}

/** The error line sevctl prints when any `ok` test failed. */
export const OK_FAILURE_MESSAGE = 'One or more tests in sevctl-ok reported a failure';
