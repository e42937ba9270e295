/**
 * Test entry: installs a fake addon (setBinding) answering PLATFORM_STATUS /
 * SNP_PLATFORM_STATUS from SEVKIT_TEST_FW (JSON), then runs a CLI in-process.
 * argv: <sev-status|sevkit> [args...]
 */
import { setBinding, type NativeBinding } from '../../lib/binding.js';

interface FwSpec {
  status?: string; // 12-byte hex
  snpStatus?: string; // 32-byte hex; default a ready Genoa (SNP API 1.55, INIT, RMP initialized)
  snpError?: { code: string };
  hang?: boolean;
  error?: { code: string; syscall?: string; fwStatus?: number };
}
const spec = JSON.parse(process.env.SEVKIT_TEST_FW ?? '{}') as FwSpec;
const fail = () => Promise.reject(Object.assign(new Error('fake failure'), { errno: -5, syscall: 'ioctl', path: '/dev/sev', ...spec.error }));
setBinding({
  platformStatus: async () =>
    spec.hang ? new Promise<Buffer>(() => {}) : spec.error ? fail() : Buffer.from(spec.status ?? '0137010001000015' + '00000000', 'hex'),
  snpPlatformStatus: async () =>
    spec.snpError
      ? Promise.reject(Object.assign(new Error('no SNP'), { errno: -22, syscall: 'ioctl', path: '/dev/sev', ...spec.snpError }))
      : Buffer.from(spec.snpStatus ?? '01370101' + '15000000' + '08000000' + '00000000' + '0700000000000e48' + '0700000000000e48', 'hex'),
  cpuid: () => {
    throw new Error('the host tests never read real CPUID');
  },
} as unknown as NativeBinding);
const which = process.argv[2];
process.argv.splice(2, 1);
await import(which === 'sev-status' ? '../../lib/cli/sev-status.js' : '../../lib/cli/sevkit.js');
