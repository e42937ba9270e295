/**
 * Fault injection: make the simulated platform fail a chosen command with a
 * chosen firmware status (EIO + SEV_RET_*) or driver errno, so every error path
 * of sevkit can be exercised through the real addon.
 *
 * Faults come from the in-process API or from `<state>/faults.json` (a JSON
 * array of FaultSpec), which the daemon re-reads before every command so other
 * processes (tests, shells) can arm a fault while the platform runs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { SevkitError } from '../errors.js';
import { parseErrno, parseRet } from './uapi.js';
import { writeFileAtomic } from '../util/fs.js';

/**
 * A fault to inject into the simulator: where it strikes, on which command, the firmware status or errno, how
 * often, and which processes it targets.
 */
export interface FaultSpec {
  /** Where it strikes: an ioctl/firmware command (default), an open() of the device, or a guest-launch command. */
  on?: 'ioctl' | 'open' | 'launch';
  /**
   * Command name: ioctl names (PLATFORM_STATUS, PDH_CERT_EXPORT, GET_ID2, ...),
   * the implicit firmware calls INIT and SHUTDOWN, launch names (LAUNCH_START, ...),
   * or '*' for any. Default '*'.
   */
  cmd?: string;
  /** Firmware status: number or name (e.g. "BAD_SIGNATURE"); the ioctl fails with EIO. */
  fwStatus?: number | string;
  /** Driver errno (name or number), returned before any firmware call (e.g. "EBUSY"). */
  errno?: number | string;
  /** How many times it fires (default 1); 'always' keeps it armed. */
  times?: number | 'always';
  /** Only requests from processes whose $SEVKIT_SIM_TAG equals this (isolates parallel tests). */
  tag?: string;
  /** Only requests from this process id (e.g. the test worker's own process.pid). */
  pid?: number;
}

export interface ResolvedFault {
  on: 'ioctl' | 'open' | 'launch';
  cmd: string;
  fwStatus?: number;
  errno?: number;
  times: number | 'always';
  tag?: string;
  pid?: number;
}

/** An invalid FaultSpec (ERR_SIM_FAULT). */
export class SimFaultError extends SevkitError {
  constructor(message: string) {
    super('ERR_SIM_FAULT', message);
  }
}

export function resolveFault(spec: FaultSpec): ResolvedFault {
  const on = spec.on ?? 'ioctl';
  if (on !== 'ioctl' && on !== 'open' && on !== 'launch') throw new SimFaultError(`fault: "on" must be ioctl, open or launch, got ${String(on)}`);
  const out: ResolvedFault = { on, cmd: (spec.cmd ?? '*').toUpperCase(), times: spec.times ?? 1 };
  if (spec.tag !== undefined) {
    if (typeof spec.tag !== 'string' || spec.tag.length === 0) throw new SimFaultError('fault: tag must be a non-empty string');
    out.tag = spec.tag;
  }
  if (spec.pid !== undefined) {
    if (!Number.isInteger(spec.pid) || spec.pid <= 0) throw new SimFaultError('fault: pid must be a positive integer');
    out.pid = spec.pid;
  }
  if (spec.fwStatus !== undefined) {
    const v = parseRet(spec.fwStatus);
    if (v === undefined) throw new SimFaultError(`fault: unknown firmware status ${String(spec.fwStatus)}`);
    out.fwStatus = v;
  }
  if (spec.errno !== undefined) {
    const v = parseErrno(spec.errno);
    if (v === undefined) throw new SimFaultError(`fault: unknown errno ${String(spec.errno)}`);
    out.errno = v;
  }
  if (out.fwStatus === undefined && out.errno === undefined) throw new SimFaultError('fault: give fwStatus or errno');
  if (on === 'open' && out.errno === undefined) throw new SimFaultError('fault: an open fault needs an errno');
  if (out.times !== 'always' && (!Number.isInteger(out.times) || (out.times as number) < 1))
    throw new SimFaultError('fault: times must be a positive integer or "always"');
  return out;
}

export const FAULTS_FILE = 'faults.json';

/** Who sent a request: what a fault's tag/pid filters compare against. */
export interface Requester {
  tag?: string | undefined;
  pid?: number | undefined;
}

/** Arm a fault for a running (or future) simulator on this state dir. */
export function armFault(stateDir: string, spec: FaultSpec): void {
  resolveFault(spec); // validate before writing
  const file = path.join(stateDir, FAULTS_FILE);
  let list: FaultSpec[] = [];
  try {
    const parsed: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (Array.isArray(parsed)) list = parsed as FaultSpec[];
  } catch {
    // none armed yet
  }
  list.push(spec);
  writeFileAtomic(file, JSON.stringify(list, null, 2) + '\n');
}

/** Disarms every fault armed on this state dir. */
export function clearFaults(stateDir: string): void {
  fs.rmSync(path.join(stateDir, FAULTS_FILE), { force: true });
}

/** The armed faults of one platform: in-memory ones plus the state dir's faults.json. */
export class FaultTable {
  private mem: ResolvedFault[] = [];

  constructor(private readonly stateDir: string | undefined) {}

  add(spec: FaultSpec): void {
    this.mem.push(resolveFault(spec));
  }

  clear(): void {
    this.mem = [];
    if (this.stateDir) clearFaults(this.stateDir);
  }

  /** Finds and consumes the first matching fault of the given kind. */
  take(on: ResolvedFault['on'], cmd: string, kind: 'fw' | 'errno', who: Requester = {}): ResolvedFault | undefined {
    const match = (f: ResolvedFault) =>
      f.on === on &&
      (f.cmd === '*' || f.cmd === cmd) &&
      (f.tag === undefined || f.tag === who.tag) &&
      (f.pid === undefined || f.pid === who.pid) &&
      (kind === 'fw' ? f.fwStatus !== undefined : f.errno !== undefined && f.fwStatus === undefined);
    const i = this.mem.findIndex(match);
    if (i >= 0) return this.consume(this.mem, i);
    if (!this.stateDir) return undefined;
    const file = path.join(this.stateDir, FAULTS_FILE);
    // Every command checks the file: a stat that does not throw keeps the common "no faults" case cheap.
    if (!fs.statSync(file, { throwIfNoEntry: false })) return undefined;
    let specs: FaultSpec[];
    try {
      specs = JSON.parse(fs.readFileSync(file, 'utf8')) as FaultSpec[];
    } catch {
      return undefined;
    }
    if (!Array.isArray(specs)) return undefined;
    for (let j = 0; j < specs.length; j++) {
      let f: ResolvedFault;
      try {
        f = resolveFault(specs[j]!);
      } catch {
        continue; // a malformed entry never fires
      }
      if (!match(f)) continue;
      const spec = specs[j]!;
      if (f.times !== 'always') {
        const left = (f.times as number) - 1;
        if (left <= 0) specs.splice(j, 1);
        else spec.times = left;
        writeFileAtomic(file, JSON.stringify(specs, null, 2) + '\n');
      }
      return f;
    }
    return undefined;
  }

  private consume(list: ResolvedFault[], i: number): ResolvedFault {
    const f = list[i]!;
    if (f.times !== 'always') {
      f.times = (f.times as number) - 1;
      if (f.times <= 0) list.splice(i, 1);
    }
    return f;
  }
}
