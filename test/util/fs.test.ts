import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DurableFileQueue, writeFileDurableAsync } from '../../lib/util/fs.js';

/** fs.promises does not export the FileHandle class: reach its prototype through a handle. */
const handleProto = await (async () => {
  const h = await fs.promises.open(os.tmpdir(), 'r');
  await h.close();
  return Object.getPrototypeOf(h) as { sync(): Promise<void> };
})();

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-fs-'));
});
afterEach(() => {
  vi.restoreAllMocks();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('writeFileDurableAsync', () => {
  it('writes the whole file with its mode, fsyncs it, and leaves no temp file', async () => {
    const sync = vi.spyOn(handleProto, 'sync');
    const f = path.join(dir, 'rec.json');
    await writeFileDurableAsync(f, '{"a":1}\n', 0o600);
    expect(fs.readFileSync(f, 'utf8')).toBe('{"a":1}\n');
    expect(fs.statSync(f).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(dir)).toEqual(['rec.json']);
    // the file, then its directory
    expect(sync.mock.calls.length).toBeGreaterThanOrEqual(2);
  });

  it('a failed write leaves the old file whole and no temp file behind', async () => {
    const f = path.join(dir, 'rec.json');
    fs.writeFileSync(f, 'old');
    const enospc = Object.assign(new Error('ENOSPC'), { code: 'ENOSPC' });
    vi.spyOn(handleProto, 'sync').mockRejectedValueOnce(enospc);
    await expect(writeFileDurableAsync(f, 'new')).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(fs.readFileSync(f, 'utf8')).toBe('old');
    expect(fs.readdirSync(dir)).toEqual(['rec.json']);
  });
});

describe('DurableFileQueue', () => {
  it('a burst of writes to one file lands in order and coalesces to the newest (one write per waiting batch)', async () => {
    const q = new DurableFileQueue();
    const f = path.join(dir, 'vm.json');
    const open = vi.spyOn(fs.promises, 'open');
    const first = q.write(f, 'state 0');
    await new Promise((r) => setImmediate(r)); // the first write is under way
    const rest = Array.from({ length: 9 }, (_, i) => q.write(f, `state ${i + 1}`));
    await first;
    expect(fs.readFileSync(f, 'utf8')).toBe('state 0');
    await Promise.all(rest);
    expect(fs.readFileSync(f, 'utf8')).toBe('state 9');
    // the nine that waited behind the first became one write
    const fileOpens = open.mock.calls.filter((c) => String(c[0]).endsWith('.tmp'));
    expect(fileOpens).toHaveLength(2);
  });

  it('a removal after queued writes wins: the file is gone and is not written again', async () => {
    const q = new DurableFileQueue();
    const f = path.join(dir, 'vm.json');
    const w1 = q.write(f, 'one');
    const w2 = q.write(f, 'two'); // waits behind w1
    const rm = q.remove(f); // turns the waiting w2 into the removal
    await Promise.all([w1, w2, rm]);
    expect(fs.existsSync(f)).toBe(false);
    await q.write(f, 'three');
    expect(fs.readFileSync(f, 'utf8')).toBe('three');
    expect(fs.readdirSync(dir)).toEqual(['vm.json']);
  });

  it('a failure rejects its callers only; later writes still run; flush waits for everything', async () => {
    const q = new DurableFileQueue();
    const a = path.join(dir, 'a.json');
    const b = path.join(dir, 'b.json');
    const enospc = Object.assign(new Error('ENOSPC'), { code: 'ENOSPC' });
    vi.spyOn(handleProto, 'sync').mockRejectedValueOnce(enospc);
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      const failed = q.write(a, 'x');
      void q.write(b, 'y'); // nobody waits for this one
      await expect(failed).rejects.toMatchObject({ code: 'ENOSPC' });
      await q.write(a, 'z');
      await q.flush();
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    expect(fs.readFileSync(a, 'utf8')).toBe('z');
    expect(fs.readFileSync(b, 'utf8')).toBe('y');
    expect(unhandled).toEqual([]);
  });
});
