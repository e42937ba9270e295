/**
 * The firmware-file reader behind launchUpdateFile: one read per file version shared by its callers,
 * a withdrawn caller leaves the others their answer, the read stops (its descriptor closed) once no
 * caller is left, and a file that changes while it is read is refused. "While it is read" is
 * observed (this process's descriptor on the file, the bytes it has read), not timed.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { measureFile } from '../../lib/sim/firmware-file.js';
import { Ret } from '../../lib/sim/uapi.js';
import { cleanupDirs, tmpDir } from './helpers.js';
import { fileIsOpen, until } from './fd-helpers.js';

afterAll(cleanupDirs);

function newFile(bytes = 16 * 1024 * 1024): { file: string; content: Buffer } {
  const content = crypto.randomBytes(bytes);
  const file = path.join(fs.realpathSync(tmpDir('sim-fwfile-')), 'fw.bin');
  fs.writeFileSync(file, content);
  return { file, content };
}

/** Bytes this process has read so far (/proc/self/io rchar: pread included). */
const bytesRead = (): number => Number(/rchar: (\d+)/.exec(fs.readFileSync('/proc/self/io', 'utf8'))![1]);

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest();

describe('measureFile', () => {
  it('a caller withdrawn mid-read leaves the other its answer; the content and hash are the bytes', async () => {
    const { file, content } = newFile();
    const gone = new AbortController();
    const withdrawn = measureFile(file, gone.signal);
    const kept = measureFile(file);
    await until(() => fileIsOpen(file), 'the file is being read');
    gone.abort();
    await expect(withdrawn).rejects.toMatchObject({ code: 'ERR_SIM_ABORTED' });
    const f = await kept;
    expect(f.content.equals(content)).toBe(true);
    expect(f.hash.copy().digest().equals(sha(content))).toBe(true);
    // The next caller takes the cached version, hash state untouched by the copy above.
    expect((await measureFile(file)).hash.copy().digest().equals(sha(content))).toBe(true);
  });

  it('once every caller is withdrawn the read stops and its descriptor closes; a later call reads afresh', async () => {
    const { file, content } = newFile();
    const a = new AbortController();
    const b = new AbortController();
    const pa = measureFile(file, a.signal);
    const pb = measureFile(file, b.signal);
    await until(() => fileIsOpen(file), 'the file is being read');
    a.abort();
    b.abort();
    await expect(pa).rejects.toMatchObject({ code: 'ERR_SIM_ABORTED' });
    await expect(pb).rejects.toMatchObject({ code: 'ERR_SIM_ABORTED' });
    await until(() => !fileIsOpen(file), 'the descriptor is closed');
    expect((await measureFile(file)).hash.copy().digest().equals(sha(content))).toBe(true);
  });

  it('a file that changes while it is read is refused (INVALID_PARAM), not measured half old, half new', async () => {
    const { file } = newFile();
    const before = bytesRead();
    const p = measureFile(file);
    const settled = { done: false };
    p.then(
      () => (settled.done = true),
      () => (settled.done = true),
    );
    // The first read has returned (this process has read a MiB more), so the reader holds the old size.
    await until(() => bytesRead() - before >= 1 << 20 || settled.done, 'the file is being read');
    expect(settled.done).toBe(false);
    fs.appendFileSync(file, Buffer.alloc(16, 1));
    const r = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(r).toMatchObject({ fwStatus: Ret.INVALID_PARAM, message: expect.stringMatching(/changed while/) });
  });

  it('refuses what is not an absolute path to a regular file', async () => {
    const dir = tmpDir('sim-fwfile-');
    await expect(measureFile('fw.bin')).rejects.toMatchObject({ fwStatus: Ret.INVALID_PARAM });
    await expect(measureFile(42)).rejects.toMatchObject({ fwStatus: Ret.INVALID_PARAM });
    await expect(measureFile(path.join(dir, 'absent'))).rejects.toMatchObject({ fwStatus: Ret.INVALID_PARAM });
    await expect(measureFile(dir)).rejects.toMatchObject({ fwStatus: Ret.INVALID_LEN });
  });
});
