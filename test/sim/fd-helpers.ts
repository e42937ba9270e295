/** Test helpers for watching the in-process simulator daemon's file reads. */
import fs from 'node:fs';

/** True while some descriptor of this process (the in-process daemon's) is open on `file`. */
export function fileIsOpen(file: string): boolean {
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`) === file) return true;
    } catch {
      // closed between readdir and readlink
    }
  }
  return false;
}

/** Waits, turn by turn of the event loop, until `cond` holds; the deadline only catches a hang. */
export async function until(cond: () => boolean, what: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}
