/**
 * A configfs-tsm report tree the simulator serves (a TEST platform, see
 * guest.ts). The entry directories and their attribute files are real files
 * under `root` (inspectable with ls/cat), but configfs runs the report request
 * when `outblob` is read, which a plain directory cannot: so the tree is
 * reached through this TsmIo (lib/snp/tsm.ts's seam), which plays configfs's
 * rules — mkdir makes the attributes, writes to inblob/privlevel bump
 * `generation`, reading outblob/auxblob makes the report once per generation,
 * sev_guest's checks (inblob exactly 64 bytes: EINVAL; privlevel above 3 or
 * below privlevel_floor: EINVAL), read-only attributes refuse writes (EACCES).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { TsmIo } from '../../snp/tsm.js';
import { trimCertTable } from '../../snp/guest.js';
import type { SimSnpGuest } from './guest.js';
import { SimGuestUnknownError } from './launch-link.js';

/** The tree inside a simulator state dir's fake host root (SEVKIT_HOST_ROOT). */
export function simTsmRoot(stateDir: string): string {
  return path.join(stateDir, 'host', 'root', 'sys', 'kernel', 'config', 'tsm', 'report');
}

interface Entry {
  generation: number;
  inblob: Buffer;
  privlevel: number;
  /** the report made for `generation`, if any */
  made?: { generation: number; outblob: Buffer; auxblob: Buffer };
}

function errno(code: string, p: string, what: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${what}, '${p}'`), { code, path: p });
}

const WRITABLE = new Set(['inblob', 'privlevel']);

export class SimTsmTree implements TsmIo {
  private readonly entries = new Map<string, Entry>();

  /**
   * `root` is created when missing; `guest` makes the reports, for the named simulator guest `vm`
   * when given (its own launch, as SEVKIT_SIM_GUEST gives the ioctl path; a guest with no launch
   * reads ENODEV), else the default guest (snp-guest.json).
   */
  constructor(
    readonly root: string,
    private readonly guest: SimSnpGuest,
    readonly vm?: string,
  ) {
    fs.mkdirSync(root, { recursive: true, mode: 0o755 });
  }

  /** The guest's VMPL floor; a named guest without a launch is a device that went away (ENODEV). */
  private floor(p: string): number {
    try {
      return this.guest.config(this.vm).vmplFloor;
    } catch (e) {
      if (e instanceof SimGuestUnknownError) throw errno('ENODEV', p, `no such device (${e.message})`);
      throw e;
    }
  }

  private locate(p: string): { name: string; attr?: string } | undefined {
    const rel = path.relative(this.root, path.resolve(p));
    if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) return undefined;
    const parts = rel.split(path.sep);
    if (parts.length > 2) return undefined;
    return parts.length === 1 ? { name: parts[0]! } : { name: parts[0]!, attr: parts[1]! };
  }

  private entry(p: string): { e: Entry; name: string; attr: string } {
    const loc = this.locate(p);
    const e = loc && this.entries.get(loc.name);
    if (!loc || !e || !loc.attr) throw errno('ENOENT', p, 'no such file or directory');
    return { e, name: loc.name, attr: loc.attr };
  }

  private put(name: string, attr: string, data: Buffer | string): void {
    fs.writeFileSync(path.join(this.root, name, attr), data);
  }

  isDir(p: string): Promise<boolean> {
    try {
      return Promise.resolve(fs.statSync(p).isDirectory());
    } catch {
      return Promise.resolve(false);
    }
  }

  mkdir(p: string): Promise<void> {
    const loc = this.locate(p);
    if (!loc || loc.attr) return Promise.reject(errno('EPERM', p, 'configfs entries are made directly under the report directory'));
    if (this.entries.has(loc.name)) return Promise.reject(errno('EEXIST', p, 'file exists'));
    fs.mkdirSync(p);
    const floor = this.guest.config().vmplFloor;
    this.entries.set(loc.name, { generation: 0, inblob: Buffer.alloc(0), privlevel: floor });
    this.put(loc.name, 'provider', 'sev_guest\n');
    this.put(loc.name, 'generation', '0\n');
    this.put(loc.name, 'privlevel_floor', `${floor}\n`);
    this.put(loc.name, 'privlevel', `${floor}\n`);
    this.put(loc.name, 'inblob', '');
    this.put(loc.name, 'outblob', '');
    this.put(loc.name, 'auxblob', '');
    return Promise.resolve();
  }

  rmdir(p: string): Promise<void> {
    const loc = this.locate(p);
    if (!loc || loc.attr || !this.entries.has(loc.name)) return Promise.reject(errno('ENOENT', p, 'no such file or directory'));
    this.entries.delete(loc.name);
    fs.rmSync(p, { recursive: true, force: true });
    return Promise.resolve();
  }

  writeFile(p: string, data: Buffer): Promise<void> {
    try {
      const { e, name, attr } = this.entry(p);
      if (!WRITABLE.has(attr)) throw errno('EACCES', p, 'permission denied');
      if (attr === 'inblob') {
        if (data.length > 64) throw errno('EINVAL', p, 'inblob takes at most 64 bytes');
        e.inblob = Buffer.from(data);
      } else {
        const t = data.toString('ascii').trim();
        const v = /^\d+$/.test(t) ? Number(t) : NaN;
        if (!(v >= 0 && v <= 3)) throw errno('EINVAL', p, 'privlevel must be 0..3');
        e.privlevel = v;
      }
      e.generation++;
      this.put(name, attr, data);
      this.put(name, 'generation', `${e.generation}\n`);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  readFile(p: string, max: number): Promise<Buffer> {
    try {
      const { e, name, attr } = this.entry(p);
      let data: Buffer;
      if (attr === 'outblob' || attr === 'auxblob') {
        // sev_report_new(): exactly 64 bytes of REPORT_DATA, a VMPL at or above the floor.
        if (e.inblob.length !== 64) throw errno('EINVAL', p, 'inblob must hold exactly 64 bytes');
        if (e.privlevel < this.floor(p)) throw errno('EINVAL', p, 'privlevel is below privlevel_floor');
        if (e.made?.generation !== e.generation) {
          const outblob = this.guest.report(e.inblob, e.privlevel, this.vm);
          const auxblob = trimCertTable(this.guest.certTable());
          e.made = { generation: e.generation, outblob, auxblob };
          this.put(name, 'outblob', outblob);
          this.put(name, 'auxblob', auxblob);
        }
        data = attr === 'outblob' ? e.made.outblob : e.made.auxblob;
      } else if (WRITABLE.has(attr)) {
        throw errno('EACCES', p, 'permission denied');
      } else {
        data = fs.readFileSync(p);
      }
      if (data.length > max) throw errno('EFBIG', p, 'file too large');
      return Promise.resolve(Buffer.from(data));
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }
}
