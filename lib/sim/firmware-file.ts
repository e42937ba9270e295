/**
 * Firmware files the simulated firmware measures by path (launchUpdateFile), read the way the kernel
 * copies a caller's buffer before it takes sev_cmd_mutex: off the event loop (fs.promises on the
 * thread pool), SHA-256'd chunk by chunk as the reads return. Each file version (device, inode, size,
 * times) is read once: launches racing for a new version share one read, later ones take the cache,
 * and each guest forks its digest from the cached hash state.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setImmediate } from 'node:timers/promises';
import { SevkitError } from '../errors.js';
import { SimFirmwareError } from './fw-error.js';
import { Ret } from './uapi.js';

/** A firmware file's bytes and the SHA-256 state after them (copy it before use). */
export interface MeasuredFile {
  content: Buffer;
  hash: crypto.Hash;
}

/** LAUNCH_UPDATE_DATA's bound on one region (the 'data' form is bounded by the frame size). */
export const MAX_MEASURED_FILE_BYTES = 64 * 1024 * 1024;
const MAX_MEASURED_FILES = 8;
/** One read's size: large, since each read is a thread-pool round trip (small reads cost more CPU overall). */
const READ_CHUNK = 4 << 20;
/** One hash step's size (~0.5 ms of SHA-256 here): the loop turns between steps, so other connections wait at most that. */
const HASH_STEP = 256 << 10;

const measured = new Map<string, { stamp: string; file: MeasuredFile }>();

/** A read under way, shared by every request for that file version; aborted once none waits for it. */
interface Reading {
  key: string;
  promise: Promise<MeasuredFile>;
  abort: AbortController;
  waiters: number;
}
const reading = new Map<string, Reading>();

const stampOf = (st: fs.Stats): string => `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;

function checkShape(p: string, st: fs.Stats): void {
  if (!st.isFile() || st.size > MAX_MEASURED_FILE_BYTES)
    throw new SimFirmwareError(Ret.INVALID_LEN, `${p}: not a regular file of at most ${MAX_MEASURED_FILE_BYTES} bytes`);
}

function ioFailure(p: string, e: unknown, what: string): SimFirmwareError {
  if (e instanceof SimFirmwareError) return e;
  return new SimFirmwareError(Ret.INVALID_PARAM, `${p}: ${(e as NodeJS.ErrnoException).code ?? what}`);
}

/**
 * The content and hash of the firmware file at absolute path `p`: from the cache while the file's
 * identity, size and times hold, else read and hashed without blocking the event loop. `signal`
 * withdraws this caller (its connection closed); the read itself stops once no caller is left.
 * Throws SimFirmwareError (INVALID_PARAM: not an absolute path, unreadable, changed while read;
 * INVALID_LEN: not a regular file or too large).
 */
export async function measureFile(p: unknown, signal?: AbortSignal): Promise<MeasuredFile> {
  if (typeof p !== 'string' || !path.isAbsolute(p)) throw new SimFirmwareError(Ret.INVALID_PARAM, 'path: expected an absolute file path');
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(p);
  } catch (e) {
    throw ioFailure(p, e, 'cannot stat');
  }
  checkShape(p, st);
  const stamp = stampOf(st);
  const hit = measured.get(p);
  if (hit?.stamp === stamp) return hit.file;
  const key = `${p}\0${stamp}`;
  let r = reading.get(key);
  if (!r) {
    const abort = new AbortController();
    r = { key, abort, waiters: 0, promise: readAndHash(p, abort.signal) };
    const started = r;
    reading.set(key, started);
    started.promise.then(
      () => reading.get(key) === started && reading.delete(key),
      () => reading.get(key) === started && reading.delete(key),
    );
  }
  return waitFor(r, signal);
}

function waitFor(r: Reading, signal: AbortSignal | undefined): Promise<MeasuredFile> {
  if (signal?.aborted) return Promise.reject(aborted());
  r.waiters++;
  return new Promise<MeasuredFile>((resolve, reject) => {
    let left = false;
    const leave = (): void => {
      if (left) return;
      left = true;
      signal?.removeEventListener('abort', onAbort);
      if (--r.waiters === 0 && !r.abort.signal.aborted) {
        // The last caller left: stop reading, and let the next request start afresh.
        r.abort.abort();
        if (reading.get(r.key) === r) reading.delete(r.key);
      }
    };
    const onAbort = (): void => {
      leave();
      reject(aborted());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    // Settled: this caller leaves without stopping anything (a withdrawn caller has left already).
    const settle = (): boolean => {
      if (left) return false;
      left = true;
      r.waiters--;
      signal?.removeEventListener('abort', onAbort);
      return true;
    };
    r.promise.then(
      (f) => settle() && resolve(f),
      (e: unknown) => settle() && reject(e as Error),
    );
  });
}

function aborted(): SevkitError {
  return new SevkitError('ERR_SIM_ABORTED', 'the request was withdrawn (its connection closed)');
}

/** Reads the file through one descriptor, so that what is hashed is what was stat'ed; caches the result. */
async function readAndHash(p: string, signal: AbortSignal): Promise<MeasuredFile> {
  let fh: fs.promises.FileHandle;
  try {
    // O_NONBLOCK: should the path turn into a FIFO after the stat, open() must not hold a pool thread.
    fh = await fs.promises.open(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    throw ioFailure(p, e, 'cannot open');
  }
  try {
    const st = await fh.stat();
    checkShape(p, st);
    const stamp = stampOf(st);
    const content = Buffer.allocUnsafe(st.size);
    const hash = crypto.createHash('sha256');
    let off = 0;
    while (off < st.size) {
      if (signal.aborted) throw aborted();
      const { bytesRead } = await fh.read(content, off, Math.min(READ_CHUNK, st.size - off), off);
      if (bytesRead === 0) break;
      for (let at = off; at < off + bytesRead; at += HASH_STEP) {
        if (at > off) await setImmediate();
        if (signal.aborted) throw aborted();
        hash.update(content.subarray(at, Math.min(at + HASH_STEP, off + bytesRead)));
      }
      off += bytesRead;
    }
    if (off !== st.size || stampOf(await fh.stat()) !== stamp)
      throw new SimFirmwareError(Ret.INVALID_PARAM, `${p}: the file changed while the firmware read it`);
    const file = { content, hash };
    measured.delete(p);
    if (measured.size >= MAX_MEASURED_FILES) measured.delete(measured.keys().next().value!);
    measured.set(p, { stamp, file });
    return file;
  } catch (e) {
    throw e instanceof SevkitError ? e : ioFailure(p, e, 'cannot read');
  } finally {
    await fh.close().catch(() => undefined);
  }
}
