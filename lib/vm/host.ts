/**
 * This host's cbitpos / reduced-phys-bits for the sev-guest object, from CPUID
 * 0x8000001F (the host area's reader honours SEVKIT_CPUID, so the simulator's
 * Genoa answers 51 / 1 here too).
 */
import { VmLaunchError } from './errors.js';
import type { SevAddressBits } from './argv.js';

/**
 * This host's cbitpos / reduced-phys-bits from CPUID 0x8000001F; throws VmLaunchError (ERR_VM_NO_SEV) when CPUID
 * shows no SEV, CpuidError for a bad CPUID file.
 */
export async function hostAddressBits(opts: { cpuidFile?: string } = {}): Promise<SevAddressBits> {
  const { sevCpuInfo } = await import('../platform/cpuid.js');
  const info = await sevCpuInfo({ file: opts.cpuidFile });
  if (!info.sev || info.cbitpos === 0) {
    throw new VmLaunchError(
      `this host reports no SEV in CPUID 0x8000001F (source: ${info.source}); cannot choose cbitpos for the sev-guest object`,
      'ERR_VM_NO_SEV',
    );
  }
  // QEMU only range-checks reduced-phys-bits (1..63); some CPUs report 0 in EBX[11:6].
  return { cbitpos: info.cbitpos, reducedPhysBits: info.reducedPhysBits || 1 };
}
