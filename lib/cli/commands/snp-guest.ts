import path from 'node:path';
import type { Command } from 'commander';
import { InputError, UsageError } from '../../errors.js';
import { action, EXIT_OK, parseIntArg, writeOutputFile } from '../run.js';

interface ReportOpts {
  reportData?: string;
  reportDataFile?: string;
  vmpl?: string;
  out: string;
  certsOut?: string;
  device?: string;
}

/** File names for the certificate table entries, by kind (spec §3.4). */
const CERT_FILES: Record<string, string> = { ARK: 'ark.der', ASK: 'ask.der', VCEK: 'vcek.der', VLEK: 'vlek.der', CRL: 'crl.der' };

async function reportData(opts: ReportOpts): Promise<Buffer> {
  if (opts.reportData !== undefined && opts.reportDataFile !== undefined) throw new UsageError('give --report-data or --report-data-file, not both');
  if (opts.reportData !== undefined) {
    const hex = opts.reportData.replace(/^0x/i, '');
    if (!/^([0-9a-fA-F]{2})*$/.test(hex) || hex.length !== 128)
      throw new UsageError(`--report-data must be 64 bytes as 128 hex digits, got ${hex.length} characters`);
    return Buffer.from(hex, 'hex');
  }
  if (opts.reportDataFile !== undefined) {
    const fs = await import('node:fs');
    let b: Buffer;
    try {
      b = fs.readFileSync(opts.reportDataFile);
    } catch (e) {
      throw new InputError(`${opts.reportDataFile}: cannot read the report data: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    if (b.length !== 64) throw new InputError(`${opts.reportDataFile}: report data must be exactly 64 bytes, got ${b.length}`);
    return b;
  }
  return Buffer.alloc(64);
}

/**
 * `sevkit snp report` (inside an SEV-SNP guest): asks the firmware for an
 * attestation report — through configfs-tsm when the kernel has it, else
 * SNP_GET_EXT_REPORT on the guest device — and writes it (atomically) to
 * --out; with --certs-out, the host's certificate table as cert-table.bin plus
 * one DER file per entry (ark.der, ask.der, vcek.der or vlek.der).
 */
export function registerGuest(snp: Command): void {
  snp
    .command('report')
    .description("inside an SEV-SNP guest: request an attestation report (and the host's certificates) and write it to a file")
    .option('--report-data <hex>', 'REPORT_DATA: 64 bytes as 128 hex digits (a nonce or a key hash; default 64 zero bytes)')
    .option('--report-data-file <file>', 'REPORT_DATA from a file of exactly 64 bytes')
    .option('--vmpl <n>', 'VMPL to make the report for, 0..3 (default 0, what verifiers require)')
    .option('--out <file>', 'where to write the 1184-byte report', 'report.bin')
    .option('--certs-out <dir>', 'write the certificate table the host supplied (cert-table.bin and one .der per certificate) into DIR')
    .option('--device <path>', 'SNP guest device (default: $SEVKIT_GUEST_DEVICE, else /dev/sev-guest)')
    .action(
      action(async (opts: ReportOpts) => {
        const data = await reportData(opts);
        const vmpl = opts.vmpl === undefined ? 0 : parseIntArg(opts.vmpl, '--vmpl');
        if (vmpl > 3) throw new UsageError(`--vmpl must be 0..3, got ${vmpl}`);
        const device = opts.device ?? process.env.SEVKIT_GUEST_DEVICE ?? '/dev/sev-guest';
        const [{ requestReport }, { parseCertTable }] = await Promise.all([import('../../snp/guest.js'), import('../../snp/certtable.js')]);
        const r = await requestReport({ reportData: data, vmpl }, { device });
        await writeOutputFile(opts.out, r.report, { what: 'the attestation report' });
        const version = r.report.length >= 4 ? r.report.readUInt32LE(0) : 0;
        let certs = '';
        if (opts.certsOut !== undefined) {
          const fs = await import('node:fs');
          if (r.certTable.length === 0) {
            certs = '; the host supplied no certificates';
          } else {
            try {
              fs.mkdirSync(opts.certsOut, { recursive: true });
            } catch (e) {
              throw new InputError(`${opts.certsOut}: cannot create the directory: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
            }
            const names: string[] = ['cert-table.bin'];
            await writeOutputFile(path.join(opts.certsOut, 'cert-table.bin'), r.certTable, { what: 'the certificate table' });
            for (const e of parseCertTable(r.certTable)) {
              const name = CERT_FILES[e.kind] ?? `${e.guid}.bin`;
              await writeOutputFile(path.join(opts.certsOut, name), e.data, { what: `the ${name} certificate` });
              names.push(name);
            }
            certs = `; ${names.join(', ')} in ${opts.certsOut}`;
          }
        }
        process.stdout.write(
          `wrote ${opts.out} (${r.report.length} bytes, report version ${version}, VMPL ${vmpl}) via ${r.source === 'tsm' ? 'configfs-tsm' : device}${certs}\n`,
        );
        return EXIT_OK;
      }),
    );
}
