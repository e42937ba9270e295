/**
 * One list of sources and defines drives both builders: binding.gyp is strict
 * JSON and CMakeLists.txt reads the addon target out of it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';

interface GypTarget {
  target_name: string;
  type?: string;
  sources: string[];
  defines?: string[];
  include_dirs?: string[];
  cflags?: string[];
  cflags_cc?: string[];
  dependencies?: string[];
}

const gyp = JSON.parse(readFileSync(path.join(ROOT, 'binding.gyp'), 'utf8')) as { targets: GypTarget[] };
const addon = gyp.targets.find((t) => t.target_name === 'sevkit');

describe('binding.gyp', () => {
  it('is strict JSON with the addon target', () => {
    expect(addon).toBeDefined();
  });
  it('lists exactly native/src/*.cc', () => {
    const onDisk = readdirSync(path.join(ROOT, 'native/src'))
      .filter((f) => f.endsWith('.cc'))
      .map((f) => `native/src/${f}`)
      .sort();
    expect([...addon!.sources].sort()).toEqual(onDisk);
  });
  it('has the defines both builds must share', () => {
    expect(addon!.defines).toEqual(expect.arrayContaining(['NAPI_VERSION=8', '_FILE_OFFSET_BITS=64', '_LARGEFILE_SOURCE']));
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    expect(addon!.defines).toContain(`NAPI_VERSION=${pkg.binary.napi_versions[0]}`);
    expect(addon!.cflags).toContain('-fvisibility=hidden');
    expect(addon!.cflags_cc).toContain('-std=c++17');
    expect(addon!.dependencies?.[0]).toMatch(/:node_addon_api_except$/);
  });
  it('CMakeLists.txt takes sources/defines from the gyp target by name, not its own list', () => {
    const cmake = readFileSync(path.join(ROOT, 'CMakeLists.txt'), 'utf8');
    expect(cmake).toMatch(/string\(JSON/);
    expect(cmake).toMatch(/set\(SEVKIT_TARGET sevkit\)/);
    expect(cmake).not.toMatch(/native\/src\/\w+\.cc/);
  });
  it('CMakeLists.txt builds the simulator shim from its gyp target too', () => {
    const cmake = readFileSync(path.join(ROOT, 'CMakeLists.txt'), 'utf8');
    expect(gyp.targets.map((t) => t.target_name)).toContain('sevkit_sim_preload');
    expect(cmake).toMatch(/sevkit_gyp_target\(\w+ sevkit_sim_preload\)/);
    expect(cmake).not.toMatch(/native\/sim\/\w+\.c\b/);
  });
});
