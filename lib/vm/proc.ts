/**
 * What /proc says about a process, for adopting QEMU processes another
 * supervisor started: a pid alone can be reused by an unrelated process after
 * QEMU exits, so a process is only "ours" when its start time (field 22 of
 * /proc/<pid>/stat, clock ticks since boot) matches the one recorded at spawn.
 */
import fs from 'node:fs';

/** Fields of /proc/<pid>/stat that identify a process; undefined when it is gone or a zombie. */
export interface ProcIdentity {
  pid: number;
  /** Clock ticks after boot at which the process started (decimal string: it can exceed 2^53 in theory). */
  startTime: string;
  pgid: number;
  ppid: number;
  state: string;
}

/** Parses /proc/<pid>/stat; the command name may hold spaces and ')' so fields are counted from the last ')'. */
export function procIdentity(pid: number): ProcIdentity | undefined {
  if (!Number.isSafeInteger(pid) || pid <= 1) return undefined;
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  // After ") ": state(3) ppid(4) pgrp(5) session(6) ... starttime(22): index = field - 3.
  const f = text
    .slice(close + 2)
    .trim()
    .split(/\s+/);
  const state = f[0] ?? '';
  if (state === 'Z' || state === 'X' || state === 'x') return undefined;
  const startTime = f[19];
  if (!startTime || !/^\d+$/.test(startTime)) return undefined;
  return { pid, startTime, ppid: Number(f[1]), pgid: Number(f[2]), state };
}

/** True when `pid` is alive (not a zombie) and is the process that started at `startTime`. */
export function isSameProcess(pid: number, startTime: string): boolean {
  return procIdentity(pid)?.startTime === startTime;
}

/** Live (non-zombie) pids whose process group is `pgid`. */
export function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return out;
  }
  for (const d of entries) {
    if (!/^\d+$/.test(d)) continue;
    const id = procIdentity(Number(d));
    if (id && id.pgid === pgid) out.push(id.pid);
  }
  return out;
}
