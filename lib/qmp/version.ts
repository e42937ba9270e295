/**
 * QEMU versions as QEMU states them (`-version`'s "QEMU emulator version M.m.u" line) and compared
 * component by component: one home for the host checks (sev-status) and the supervisor's SNP check.
 */

/** The "M.m[.u]" of a `qemu-system-x86_64 -version` text, or null when it has none. */
export function parseQemuVersion(text: string): string | null {
  return /QEMU emulator version (\d+\.\d+(?:\.\d+)?)/.exec(text)?.[1] ?? null;
}

/** Whether "M.m[.u]" `version` is at least `min` (missing components count as 0); false for null. */
export function versionAtLeast(version: string | null, min: string): boolean {
  if (!version) return false;
  const a = version.split('.').map(Number);
  const b = min.split('.').map(Number);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}
