/**
 * Ops per CPU-second of `fn` after a 20 ms warm-up. CPU time, not wall time, so
 * other processes on a shared machine do not skew the ratios a benchmark prints.
 */
export function opsPerCpuSecond(fn: () => unknown, seconds: number): number {
  const cpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  const warm = performance.now();
  while (performance.now() - warm < 20) fn();
  let n = 0;
  const start = cpu();
  let now = start;
  while (now - start < seconds) {
    fn();
    n++;
    now = cpu();
  }
  return n / (now - start);
}
