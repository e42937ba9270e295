/** The missing-addon error tells each kind of user what actually fixes it. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, it, vi } from 'vitest';
import { buildHint, PACKAGE_ROOT } from '../../lib/binding.js';
import { findShim } from '../../lib/sim/env.js';

it('a consumer (sevkit inside node_modules) is told `npm rebuild sevkit`, not a script their project lacks', () => {
  const consumer = path.join(os.tmpdir(), 'app', 'node_modules', 'sevkit');
  expect(buildHint(consumer)).toMatch(/npm rebuild sevkit/);
  expect(buildHint(consumer)).not.toMatch(/build:gyp/);
});

it('a checkout of this repository is told its own build script', () => {
  expect(buildHint(PACKAGE_ROOT)).toMatch(/npm run build:gyp/);
  const bare = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-hint-'));
  try {
    expect(buildHint(bare)).toBe('reinstall sevkit');
  } finally {
    fs.rmSync(bare, { recursive: true, force: true });
  }
});

it('a consumer without the simulator shim is told `npm rebuild sevkit` too', () => {
  vi.stubEnv('SEVKIT_SIM_SHIM', '');
  try {
    const consumer = path.join(os.tmpdir(), 'app', 'node_modules', 'sevkit');
    expect(() => findShim(consumer)).toThrow(/shim \(sevkit_sim_preload\.so\) is not built; .*npm rebuild sevkit/);
    expect(() => findShim(consumer)).not.toThrow(/build:gyp/);
  } finally {
    vi.unstubAllEnvs();
  }
});
