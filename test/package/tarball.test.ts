/**
 * The npm package as a consumer gets it. A copy of this checkout (without
 * node_modules, build/, dist/, prebuilds/) is packed with `npm pack`, which runs
 * `prepack` (fresh dist/, prebuilds/linux-x64/ with the addon and the simulator
 * shim). Then:
 * - the file list (`npm pack --dry-run --json`) is checked against an allow-list;
 * - the tarball is installed into an empty project with a PATH holding only node,
 *   npm, sh and a few coreutils (no compiler, make or Python), with sevkit's install
 *   script allowed to run, so a missing prebuild would fail the install;
 * - `sevkit sim -- sevkit show version` runs from node_modules/.bin, and
 *   `import('sevkit')` / `require('sevkit')` load it;
 * - a small consumer type-checks against the installed .d.ts under
 *   commonjs + node10 (no esModuleInterop), NodeNext and bundler.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, runCommand, type CommandResult } from '../helpers/cli.js';

const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
const PREBUILDS = `prebuilds/${process.platform}-${process.arch}`;

/** Everything the tarball may hold; anything else (tests, CMakeLists.txt, maps, lib/*.ts) fails the test. */
const ALLOWED: RegExp[] = [
  /^package\.json$/,
  /^README\.md$/,
  /^LICENSE$/,
  /^ARCHITECTURE\.md$/,
  /^docs\/[\w.-]+\.md$/,
  /^lib\/[\w-]+\/README\.md$/, // per-area notes the README links to (no lib/ sources)
  /^dist\/([\w-]+\/)*[\w.-]+\.(js|d\.ts)$/,
  /^prebuilds\/linux-x64\/(sevkit\.glibc\.node|sevkit_sim_preload\.so)$/,
  // Building from source where no prebuild fits (`npm rebuild sevkit`) needs these, and only these.
  /^binding\.gyp$/,
  /^native\/README\.md$/,
  /^native\/include\/[\w-]+\.h$/,
  /^native\/src\/[\w-]+\.(cc|h)$/,
  /^native\/sim\/[\w-]+\.c$/,
];

/** Commands the compiler-less PATH offers: what npm, its lifecycle shell and sevkit use. */
const TOOLS = [
  'node',
  'npm',
  'npx',
  'sh',
  'env',
  'cat',
  'ls',
  'mkdir',
  'rm',
  'cp',
  'mv',
  'ln',
  'chmod',
  'uname',
  'dirname',
  'basename',
  'readlink',
  'true',
  'false',
];
const COMPILERS = ['cc', 'gcc', 'g++', 'c++', 'clang', 'make', 'python', 'python3', 'cmake'];

/** The parent's environment minus npm's per-invocation variables (npm test sets dozens). */
function baseEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && k !== 'INIT_CWD' && k !== 'NODE_OPTIONS') env[k] = v;
  return { ...env, NO_COLOR: '1', ...extra };
}

/** A copy of the checkout as a clone has it: no installed or built trees. */
function copyCheckout(dest: string): void {
  const skip = new Set(['node_modules', 'build', 'dist', 'prebuilds', '.git', 'coverage']);
  fs.cpSync(ROOT, dest, {
    recursive: true,
    filter: (src) => {
      const rel = path.relative(ROOT, src);
      const top = rel.split(path.sep)[0]!;
      return rel === '' || !(skip.has(top) || top.startsWith('.sim-'));
    },
  });
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-pack-'));
const src = path.join(work, 'src');
const app = path.join(work, 'app');
const bin = path.join(work, 'bin');
const tarball = path.join(work, `${pkg.name}-${pkg.version}.tgz`);
let packed: CommandResult;
let listed: { path: string; size: number }[] = [];
let installed: CommandResult;
/** The consumer's environment: compiler-less PATH, nothing from npm test. */
let appEnv: NodeJS.ProcessEnv;

beforeAll(async () => {
  copyCheckout(src);
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(src, 'node_modules'));
  packed = await runCommand('npm', ['pack', '--pack-destination', work], { cwd: src, env: baseEnv({}), timeoutMs: 900_000 });
  if (packed.code !== 0) throw new Error(`npm pack failed:\n${(packed.stdout + packed.stderr).slice(-4000)}`);
  const dry = await runCommand('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: src, env: baseEnv({}), timeoutMs: 120_000 });
  listed = (JSON.parse(dry.stdout) as { files: { path: string; size: number }[] }[])[0]!.files;

  fs.mkdirSync(bin);
  for (const t of TOOLS) {
    const found = (process.env.PATH ?? '')
      .split(':')
      .map((d) => path.join(d, t))
      .find((p) => fs.existsSync(p));
    if (found) fs.symlinkSync(found, path.join(bin, t));
  }
  fs.mkdirSync(app);
  // allowScripts: recent npm (11.19 here) skips dependency install scripts unless allowed; allowed here so that
  // node-gyp-build really runs (and would try to compile if the prebuild did not fit).
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, allowScripts: { [pkg.name]: true } }));
  appEnv = baseEnv({ PATH: `${path.join(app, 'node_modules', '.bin')}:${bin}` });
  installed = await runCommand('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts', tarball], {
    cwd: app,
    env: appEnv,
    timeoutMs: 300_000,
  });
  console.log(
    `[package] npm pack ${(packed.ms / 1000).toFixed(1)} s: ${listed.length} files, ${fs.statSync(tarball).size} bytes; ` +
      `npm install (no compiler) ${(installed.ms / 1000).toFixed(1)} s`,
  );
}, 1_500_000);

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe('npm pack', () => {
  it('lists only allowed files, and the tarball holds exactly that list', async () => {
    const paths = listed.map((f) => f.path).sort();
    expect(paths.filter((p) => !ALLOWED.some((re) => re.test(p)))).toEqual([]);
    const tar = await runCommand('tar', ['-tzf', tarball], { cwd: work, env: baseEnv({}), timeoutMs: 60_000 });
    expect(tar.code).toBe(0);
    const inTar = tar.stdout
      .split('\n')
      .filter((l) => l && !l.endsWith('/'))
      .map((l) => l.replace(/^package\//, ''))
      .sort();
    expect(inTar).toEqual(paths);
  });

  it('ships the LICENSE, both prebuilds, fresh dist with types, the sources to rebuild, and no maps or tests', () => {
    const paths = new Set(listed.map((f) => f.path));
    for (const p of [
      'LICENSE',
      'README.md',
      `${PREBUILDS}/sevkit.glibc.node`,
      `${PREBUILDS}/sevkit_sim_preload.so`,
      'dist/index.js',
      'dist/index.d.ts',
      'dist/cli/sevkit.js',
      'binding.gyp',
      'native/sim/sev_preload.c',
    ]) {
      expect(paths, p).toContain(p);
    }
    expect([...paths].filter((p) => /\.map$|\.test\.|(^|\/)test\/|CMakeLists\.txt|\.ts$/.test(p) && !p.endsWith('.d.ts'))).toEqual([]);
    // Every lib module is built (dist is rebuilt from scratch, so nothing stale either).
    const libModules = fs
      .readdirSync(path.join(ROOT, 'lib'), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'))
      .map((f) => `dist/${f.replace(/\.ts$/, '.js')}`);
    expect(libModules.filter((m) => !paths.has(m))).toEqual([]);
    expect([...paths].filter((p) => p.startsWith('dist/') && p.endsWith('.js') && !libModules.includes(p))).toEqual([]);
  });

  it('resolves every relative link in the README to a shipped file', () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const links = [...readme.matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)].map((m) => m[1]!).filter((l) => !/^[a-z]+:/i.test(l));
    expect(links.length).toBeGreaterThan(0);
    const paths = new Set(listed.map((f) => f.path));
    expect(links.filter((l) => !paths.has(l))).toEqual([]);
  });
});

describe('npm install of the tarball with no compiler on PATH', () => {
  it('the PATH has no compiler, make or Python', () => {
    expect(COMPILERS.filter((c) => fs.existsSync(path.join(bin, c)))).toEqual([]);
    expect(fs.readdirSync(bin).sort()).toEqual(TOOLS.filter((t) => fs.existsSync(path.join(bin, t))).sort());
    expect(fs.readdirSync(bin)).toEqual(expect.arrayContaining(['node', 'npm', 'sh']));
  });

  it('installs, running node-gyp-build, which takes the prebuild instead of compiling', () => {
    expect(installed.code, installed.stdout + installed.stderr).toBe(0);
    // The install script did run (so a missing prebuild would have meant node-gyp, and failure here)...
    expect(installed.stdout).toMatch(/> node-gyp-build/);
    // ...and built nothing.
    const dir = path.join(app, 'node_modules', pkg.name);
    expect(fs.existsSync(path.join(dir, 'build'))).toBe(false);
    expect(installed.stdout + installed.stderr).not.toMatch(/gyp (info|ERR)|python/i);
  });

  it('runs `sevkit sim -- sevkit show version` from node_modules/.bin', { timeout: 180_000 }, async () => {
    const r = await runCommand(
      path.join(app, 'node_modules', '.bin', 'sevkit'),
      ['sim', '--state', path.join(work, 'sim-state'), '--', 'sevkit', 'show', 'version'],
      {
        cwd: app,
        env: appEnv,
        timeoutMs: 170_000,
      },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
    expect(r.stderr).toMatch(/SIMULATED/);
  });

  it('runs the bundled `sev-status --json` under `sevkit sim --`: it finds the addon from dist/cli/ and reads the firmware', { timeout: 180_000 }, async () => {
    const r = await runCommand(
      path.join(app, 'node_modules', '.bin', 'sevkit'),
      ['sim', '--state', path.join(work, 'sim-state-status'), '--', 'sev-status', '--json', '--no-qemu'],
      { cwd: app, env: appEnv, timeoutMs: 170_000 },
    );
    const report = JSON.parse(r.stdout) as { firmware: { available: boolean; apiMajor: number | null; error: unknown } };
    expect(report.firmware.error, r.stderr).toBeNull();
    expect(report.firmware.available).toBe(true);
    expect(report.firmware.apiMajor).toBeGreaterThanOrEqual(1);
    // one file: the modules it imports are inside it
    const entry = fs.readFileSync(path.join(app, 'node_modules', pkg.name, 'dist/cli/sev-status.js'), 'utf8');
    expect(entry).not.toMatch(/from ['"]\.\.?\//);
  });

  it('loads with import() and require(), the addon from prebuilds/', { timeout: 120_000 }, async () => {
    const esm = await runCommand(
      'node',
      ['--input-type=module', '-e', "const m = await import('sevkit'); console.log(typeof m.SevPlatform, typeof m.verifyChain, typeof m.startSim);"],
      { cwd: app, env: appEnv, timeoutMs: 60_000 },
    );
    expect(esm.code, esm.stderr).toBe(0);
    expect(esm.stdout.trim()).toBe('function function function');
    const cjs = await runCommand(
      'node',
      [
        '-e',
        "const m = require('sevkit'); console.log(typeof m.SevPlatform, require('node-gyp-build').path(require('path').dirname(require.resolve('sevkit/package.json'))));",
      ],
      { cwd: app, env: appEnv, timeoutMs: 60_000 },
    );
    expect(cjs.code, cjs.stderr).toBe(0);
    expect(cjs.stdout.trim()).toBe(`function ${path.join(app, 'node_modules', pkg.name, PREBUILDS, 'sevkit.glibc.node')}`);
  });
});

/** A consumer using values and types from across the API (every .d.ts it reaches is checked: skipLibCheck off). */
const CONSUMER = `import { SevPlatform, SevkitError, verifyChain, createSession, startCrnServer } from 'sevkit';
import type { PlatformStatus } from 'sevkit';

export async function apiVersion(device?: string): Promise<string> {
  const s: PlatformStatus = await new SevPlatform(device === undefined ? {} : { device }).status();
  return \`\${s.apiMajor}.\${s.apiMinor}\`;
}
export const isSevkitError = (e: unknown): e is SevkitError => e instanceof SevkitError;
export type Api = [typeof verifyChain, typeof createSession, typeof startCrnServer];
`;

const SETTINGS: { name: string; type?: 'module'; file: string; compilerOptions: Record<string, unknown> }[] = [
  {
    name: 'commonjs + node10, no esModuleInterop',
    file: 'index.ts',
    compilerOptions: { module: 'commonjs', moduleResolution: 'node10', esModuleInterop: false },
  },
  { name: 'NodeNext (ESM consumer)', type: 'module', file: 'index.ts', compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext' } },
  { name: 'NodeNext (CommonJS consumer, require(esm))', file: 'index.cts', compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext' } },
  { name: 'bundler', type: 'module', file: 'index.ts', compilerOptions: { module: 'ESNext', moduleResolution: 'bundler' } },
];

describe('the shipped types', () => {
  beforeAll(() => {
    // What a TypeScript consumer adds: typescript and @types/node (here, ours).
    fs.mkdirSync(path.join(app, 'node_modules', '@types'), { recursive: true });
    fs.symlinkSync(path.join(ROOT, 'node_modules', '@types', 'node'), path.join(app, 'node_modules', '@types', 'node'));
  });

  it.each(SETTINGS)('type-check a consumer under $name', { timeout: 300_000 }, async ({ name, type, file, compilerOptions }) => {
    const dir = path.join(app, name.replace(/\W+/g, '-'));
    fs.mkdirSync(dir);
    if (type) fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ type }));
    fs.writeFileSync(path.join(dir, file), CONSUMER);
    const tsconfig = {
      compilerOptions: { target: 'ES2022', strict: true, noEmit: true, skipLibCheck: false, types: ['node'], ...compilerOptions },
      files: [file],
    };
    fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify(tsconfig, null, 2));
    const r = await runCommand(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], {
      cwd: dir,
      env: appEnv,
      timeoutMs: 280_000,
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });
});
