/**
 * configfs-tsm (Linux ≥ 6.7, spec §4.3): an attestation report through files
 * instead of an ioctl. A report is an entry directory under
 * /sys/kernel/config/tsm/report: write `privlevel` (VMPL) and `inblob`
 * (REPORT_DATA, exactly 64 bytes for sev_guest), read `outblob` (the bare
 * report) and `auxblob` (the certificate table), and compare `generation`
 * before and after: every write bumps it, so a different count means another
 * writer raced this request. The root is an option (the simulator serves a
 * tree of its own), and so is the file-system access (`io`), because a plain
 * directory cannot run a request when `outblob` is read the way configfs does.
 */
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { SnpError } from './errors.js';

/** Where the kernel mounts the report directory. */
export const DEFAULT_TSM_ROOT = '/sys/kernel/config/tsm/report';
/** Largest outblob accepted (the report is 1184 bytes; go-sev-guest caps at 4 KiB). */
export const TSM_OUTBLOB_MAX = 4096;
/** Largest auxblob accepted (the driver's certificate limit, 16 KiB). */
export const TSM_AUXBLOB_MAX = 16384;

/** A configfs-tsm request that failed: missing tree, another provider, a race, or an I/O error. */
export class TsmError extends SnpError {
  /** errno name of the underlying I/O error, when there was one. */
  readonly sysCode: string | undefined;

  constructor(message: string, opts: { field?: string; sysCode?: string; cause?: unknown } = {}) {
    super('ERR_SNP_TSM', `configfs-tsm: ${message}`, opts);
    this.sysCode = opts.sysCode;
  }
}

/** The file operations configfs-tsm needs; the default is node:fs on the real tree. */
export interface TsmIo {
  /** Whether `p` is a directory. */
  isDir(p: string): Promise<boolean>;
  mkdir(p: string): Promise<void>;
  rmdir(p: string): Promise<void>;
  /** Read at most `max` bytes; more is an error (EFBIG), as an unbounded read of a hostile tree would be. */
  readFile(p: string, max: number): Promise<Buffer>;
  writeFile(p: string, data: Buffer): Promise<void>;
}

/** Options: where the tree is and how to reach it. */
export interface TsmOptions {
  /** The report directory (default /sys/kernel/config/tsm/report). */
  root?: string;
  /** File access (default node:fs). */
  io?: TsmIo;
  /** Entry name (default sevkit-<pid>-<random>). */
  name?: string;
}

async function readBounded(p: string, max: number): Promise<Buffer> {
  const fh = await fsp.open(p, 'r');
  try {
    const buf = Buffer.alloc(max + 1);
    let n = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, null);
      if (bytesRead === 0) break;
      n += bytesRead;
      if (n > max) throw Object.assign(new Error(`${p}: more than ${max} bytes`), { code: 'EFBIG' });
    }
    return buf.subarray(0, n);
  } finally {
    await fh.close();
  }
}

/** node:fs access to a real configfs tree. */
export const nodeTsmIo: TsmIo = {
  async isDir(p) {
    try {
      return (await fsp.stat(p)).isDirectory();
    } catch {
      return false;
    }
  },
  mkdir: (p) => fsp.mkdir(p),
  rmdir: (p) => fsp.rmdir(p),
  readFile: readBounded,
  writeFile: (p, data) => fsp.writeFile(p, data),
};

/** Whether the configfs-tsm report directory exists. */
export async function tsmAvailable(opts: TsmOptions = {}): Promise<boolean> {
  return (opts.io ?? nodeTsmIo).isDir(opts.root ?? DEFAULT_TSM_ROOT);
}

/** What one configfs-tsm request returned. */
export interface TsmReport {
  /** outblob: the bare report. */
  report: Buffer;
  /** auxblob: the certificate table as the driver trimmed it (empty when none, or on kernels without auxblob). */
  auxblob: Buffer;
  /** provider without its newline ('sev_guest'). */
  provider: string;
  /** generation after the request. */
  generation: number;
}

function ioError(what: string, p: string, e: unknown): TsmError {
  const code = (e as NodeJS.ErrnoException).code;
  return new TsmError(`${what} ${p} failed: ${code ?? (e as Error).message}`, { ...(code ? { sysCode: code } : {}), cause: e });
}

/**
 * One report through configfs-tsm. `reportData` must be 64 bytes and `vmpl`
 * 0..3 (checked by the caller, lib/snp/guest.ts); a VMPL below
 * `privlevel_floor` is refused here. Always removes its entry directory.
 * Throws TsmError.
 */
export async function tsmReport(req: { reportData: Buffer; vmpl: number }, opts: TsmOptions = {}): Promise<TsmReport> {
  const io = opts.io ?? nodeTsmIo;
  const root = opts.root ?? DEFAULT_TSM_ROOT;
  const dir = path.join(root, opts.name ?? `sevkit-${process.pid}-${crypto.randomBytes(6).toString('hex')}`);
  const at = (f: string) => path.join(dir, f);
  const read = async (f: string, max: number) => {
    try {
      return await io.readFile(at(f), max);
    } catch (e) {
      throw ioError('reading', at(f), e);
    }
  };
  const write = async (f: string, data: Buffer) => {
    try {
      await io.writeFile(at(f), data);
    } catch (e) {
      throw ioError('writing', at(f), e);
    }
  };
  const readInt = async (f: string) => {
    const t = (await read(f, 32)).toString('ascii').trim();
    if (!/^\d+$/.test(t)) throw new TsmError(`${at(f)} holds ${JSON.stringify(t)}, not a number`, { field: f });
    return Number(t);
  };
  try {
    await io.mkdir(dir);
  } catch (e) {
    throw ioError('creating', dir, e);
  }
  const run = async (): Promise<TsmReport> => {
    const provider = (await read('provider', 64)).toString('utf8').replace(/\n$/, '');
    if (provider !== 'sev_guest')
      throw new TsmError(`${at('provider')} is ${JSON.stringify(provider)}, not sev_guest: this guest's TSM does not make SNP reports`, { field: 'provider' });
    let floor = 0;
    try {
      floor = await readInt('privlevel_floor');
    } catch (e) {
      if (!(e instanceof TsmError && e.sysCode === 'ENOENT')) throw e;
    }
    if (req.vmpl < floor) throw new TsmError(`VMPL ${req.vmpl} is below this guest's privlevel_floor ${floor}`, { field: 'privlevel' });
    const before = await readInt('generation');
    await write('privlevel', Buffer.from(`${req.vmpl}\n`));
    await write('inblob', req.reportData);
    const report = await read('outblob', TSM_OUTBLOB_MAX);
    let auxblob: Buffer = Buffer.alloc(0);
    try {
      auxblob = await read('auxblob', TSM_AUXBLOB_MAX);
    } catch (e) {
      if (!(e instanceof TsmError && e.sysCode === 'ENOENT')) throw e;
    }
    const generation = await readInt('generation');
    if (generation !== before + 2) {
      throw new TsmError(`generation went from ${before} to ${generation} across our 2 writes: another writer raced this request; retry`, {
        field: 'generation',
      });
    }
    return { report, auxblob, provider, generation };
  };
  let result: TsmReport;
  try {
    result = await run();
  } catch (e) {
    // A failed request keeps its own error; the entry goes either way.
    await io.rmdir(dir).catch(() => undefined);
    throw e;
  }
  try {
    await io.rmdir(dir);
  } catch (e) {
    throw ioError('removing', dir, e);
  }
  return result;
}
