import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { probeQemuCached, resolveCommand } from '../../lib/host/qemuCache.js';
import { cleanup, fixture, tempDir } from './helpers.js';

afterAll(cleanup);

describe('QEMU version cache', () => {
  it('caches only successful answers and survives a corrupt or unwritable cache', async () => {
    const fx = fixture({ qemuVersion: '7.2.22' });
    const cacheFile = path.join(tempDir(), 'c', 'qemu-version.json');
    expect(await probeQemuCached(fx.qemu, { cacheFile })).toMatchObject({ version: '7.2.22', cached: false });
    expect(fs.statSync(cacheFile).mode & 0o777).toBe(0o600);
    expect(await probeQemuCached(fx.qemu, { cacheFile })).toMatchObject({ version: '7.2.22', cached: true });
    fs.writeFileSync(cacheFile, '{not json');
    expect(await probeQemuCached(fx.qemu, { cacheFile })).toMatchObject({ version: '7.2.22', cached: false });
    const bad = path.join(tempDir(), 'qemu-bad');
    fs.writeFileSync(bad, '#!/bin/sh\necho garbage\n', { mode: 0o755 });
    expect(await probeQemuCached(bad, { cacheFile })).toMatchObject({ version: null, cached: false });
    expect(await probeQemuCached(bad, { cacheFile })).toMatchObject({ version: null, cached: false });
    const ro = path.join(fx.qemu, 'not-a-dir', 'q.json'); // mkdir fails with ENOTDIR
    expect(await probeQemuCached(fx.qemu, { cacheFile: ro })).toMatchObject({ version: '7.2.22', cached: false });
  });

  it('reports a missing QEMU as not found', async () => {
    const r = await probeQemuCached(path.join(tempDir(), 'none'), { cacheFile: path.join(tempDir(), 'q.json') });
    expect(r).toMatchObject({ found: false, version: null, cached: false });
  });

  it('resolves bare names through PATH like execvp', () => {
    const fx = fixture();
    expect(resolveCommand('qemu-system-x86_64', `/nonexistent:${path.dirname(fx.qemu)}`)).toBe(fx.qemu);
    expect(resolveCommand('qemu-system-x86_64', '/nonexistent')).toBeNull();
  });
});
