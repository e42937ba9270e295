/** The human tree `sev-status` prints (colours only when asked: TTY and no NO_COLOR). */
import { GUEST_LABEL, GUEST_TYPES, type CheckGroup, type CheckStatus } from './checks.js';
import type { StatusReport } from './status.js';

const GROUP_TITLE: Record<CheckGroup, string> = {
  cpu: 'CPU',
  kernel: 'Kernel (kvm_amd)',
  device: 'Device nodes',
  firmware: 'SEV firmware (PLATFORM_STATUS)',
  userspace: 'QEMU and OVMF',
  limits: 'Limits',
  snp: 'SEV-SNP readiness (BIOS/RMP, IOMMU, SNP_INIT, SNP firmware)',
};

const ANSI = { green: '\x1b[32m', red: '\x1b[31m', yellow: '\x1b[33m', dim: '\x1b[2m', bold: '\x1b[1m', reset: '\x1b[0m' } as const;
const STATUS_TEXT: Record<CheckStatus, string> = { pass: 'PASS', fail: 'FAIL', warn: 'WARN', info: 'INFO', skip: 'SKIP' };
const STATUS_COLOR: Record<CheckStatus, keyof typeof ANSI> = { pass: 'green', fail: 'red', warn: 'yellow', info: 'dim', skip: 'dim' };

/** The human tree `sev-status` prints for a report; ANSI colours only when `color`. */
export function renderStatus(r: StatusReport, color = false): string {
  const paint = (c: keyof typeof ANSI, s: string) => (color ? `${ANSI[c]}${s}${ANSI.reset}` : s);
  const out: string[] = [];
  const where = r.host.simulated ? `simulated host (root ${r.host.root}${r.host.cpuidSource === 'file' ? ', CPUID from file' : ''})` : 'this host';
  out.push(paint('bold', `sev-status: ${where}${r.host.kernel ? `, Linux ${r.host.kernel}` : ''}`));
  let group: CheckGroup | undefined;
  for (const c of r.checks) {
    if (c.group !== group) {
      group = c.group;
      out.push(paint('bold', GROUP_TITLE[group]));
    }
    out.push(`  [ ${paint(STATUS_COLOR[c.status], STATUS_TEXT[c.status])} ] ${c.title}: ${c.detail}`);
    if (c.fix) out.push(`           ${paint('yellow', 'fix:')} ${c.fix}`);
  }
  out.push(paint('bold', 'Verdict'));
  const width = Math.max(...GUEST_TYPES.map((g) => GUEST_LABEL[g].length));
  for (const g of GUEST_TYPES) {
    const v = r.verdicts[g];
    const label = GUEST_LABEL[g].padEnd(width);
    if (v.ready) out.push(`  ${label}  ${paint('green', 'ready')}`);
    else {
      const first = v.reasons[0] ?? '';
      const more = v.reasons.length > 1 ? ` (+${v.reasons.length - 1} more)` : '';
      out.push(`  ${label}  ${paint('red', 'not ready')} because ${first}${more}`);
    }
  }
  return `${out.join('\n')}\n`;
}
