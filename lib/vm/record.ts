/**
 * The supervisor's on-disk state: one vm.json per VM run dir (what a later
 * process needs to adopt the VM) and a lock on the run root (one supervisor
 * per root). Both are written durably (temp + fsync + rename, 0600) and read
 * as untrusted input: a record that does not parse, names a path outside its
 * own run dir or a pid that is not a positive integer is treated as absent.
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeFileDurable } from '../util/fs.js';
import { VmLaunchError } from './errors.js';
import { isSameProcess, procIdentity } from './proc.js';
import type { VmMeasurement, VmSpec } from './spec.js';

export const VM_RECORD_FILE = 'vm.json';
export const ROOT_LOCK_FILE = 'supervisor.lock';

/** vm.json, version 1. */
export interface VmRecordFile {
  version: 1;
  name: string;
  state: 'starting' | 'awaiting-secret' | 'running';
  pid: number;
  /** /proc/<pid>/stat start time: a reused pid does not match it. */
  startTime: string;
  pgid: number;
  runDir: string;
  qmpSocket: string;
  /** The VM's spec without the launch blobs. */
  spec: VmSpec;
  secretArea?: { base: number; size: number };
  measurement?: VmMeasurement;
}

export function writeVmRecord(dir: string, rec: VmRecordFile): void {
  writeFileDurable(path.join(dir, VM_RECORD_FILE), `${JSON.stringify(rec)}\n`, 0o600);
}

const posInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 1;

/** The record in `dir`, or undefined when it is missing or not a well-formed record of this very dir. */
export function readVmRecord(dir: string): VmRecordFile | undefined {
  let r: Partial<VmRecordFile>;
  try {
    const st = fs.lstatSync(path.join(dir, VM_RECORD_FILE));
    if (!st.isFile() || st.size > 1 << 20) return undefined;
    r = JSON.parse(fs.readFileSync(path.join(dir, VM_RECORD_FILE), 'utf8')) as Partial<VmRecordFile>;
  } catch {
    return undefined;
  }
  if (!r || typeof r !== 'object' || r.version !== 1) return undefined;
  if (typeof r.name !== 'string' || !r.spec || typeof r.spec !== 'object' || r.spec.name !== r.name) return undefined;
  if (r.state !== 'starting' && r.state !== 'awaiting-secret' && r.state !== 'running') return undefined;
  if (!posInt(r.pid) || !posInt(r.pgid) || typeof r.startTime !== 'string' || !/^\d+$/.test(r.startTime)) return undefined;
  if (r.runDir !== dir || r.qmpSocket !== path.join(dir, 'qmp.sock')) return undefined;
  if (r.measurement !== undefined && (typeof r.measurement.launchMeasure !== 'string' || typeof r.measurement.sevInfo !== 'object')) return undefined;
  if (r.secretArea !== undefined && !(Number.isSafeInteger(r.secretArea.base) && Number.isSafeInteger(r.secretArea.size))) return undefined;
  return r as VmRecordFile;
}

/** The run root's lock, held from adopt() to close(). */
export interface RootLock {
  release(): void;
}

/**
 * Takes `<root>/supervisor.lock` for this process. A lock whose holder (pid +
 * start time) is still alive refuses with ERR_VM_RUNDIR_BUSY; a stale one (the
 * holder crashed) is taken over.
 */
export function acquireRootLock(root: string): RootLock {
  const file = path.join(root, ROOT_LOCK_FILE);
  const me = procIdentity(process.pid);
  try {
    const held = JSON.parse(fs.readFileSync(file, 'utf8')) as { pid?: unknown; startTime?: unknown };
    if (posInt(held.pid) && held.pid !== process.pid && typeof held.startTime === 'string' && isSameProcess(held.pid, held.startTime)) {
      throw new VmLaunchError(`run root ${root} is in use by another supervisor (pid ${held.pid}); stop it or use another run directory`, 'ERR_VM_RUNDIR_BUSY');
    }
  } catch (e) {
    if (e instanceof VmLaunchError) throw e;
    /* absent or unreadable: stale */
  }
  writeFileDurable(file, `${JSON.stringify({ pid: process.pid, startTime: me?.startTime ?? '0' })}\n`, 0o600);
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    process.off('exit', release);
    try {
      const held = JSON.parse(fs.readFileSync(file, 'utf8')) as { pid?: unknown };
      if (held.pid === process.pid) fs.rmSync(file, { force: true });
    } catch {
      /* already gone */
    }
  };
  process.on('exit', release);
  return { release };
}
