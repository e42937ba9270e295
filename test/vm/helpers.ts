import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** PIDs of live processes whose command line mentions `needle` (e.g. a test's run root). */
export function processesMentioning(needle: string): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8');
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      if (/\) Z /.test(stat)) continue; // zombie awaiting its parent: not running
      if (cmd.includes(needle)) out.push(Number(d));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

export function tmpRunRoot(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `sevkit-${tag}-`));
}

/** Everything left under `dir` (recursively), for "nothing left on disk" assertions. */
export function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true }).map(String);
}
