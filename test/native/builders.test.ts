/**
 * Both builders build both native parts: `npm run build:gyp` (node-gyp, binding.gyp)
 * and `npm run build:native` (cmake-js, CMakeLists.txt) each produce the addon and
 * the simulator's LD_PRELOAD shim in build/Release, and what each built works: the
 * CLI runs `sim -- show version` with that build's addon and shim and nothing else.
 * Each build runs in a private copy of its inputs, so the shared build/ is untouched.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, cliEntry, runCommand } from '../helpers/cli.js';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-builders-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** Run a command to completion with a deadline, in this process's environment plus `env`. */
function run(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number }) {
  return runCommand(cmd, args, { cwd: opts.cwd, env: { ...process.env, NO_COLOR: '1', ...opts.env }, timeoutMs: opts.timeoutMs });
}

const BUILDERS = [
  { name: 'node-gyp', script: 'build:gyp' },
  { name: 'cmake-js', script: 'build:native' },
] as const;

describe.each(BUILDERS)('$name (npm run $script)', ({ name, script }) => {
  const dir = path.join(work, name);

  it('builds the addon and the simulator shim into build/Release', { timeout: 600_000 }, async () => {
    fs.mkdirSync(dir);
    for (const f of ['package.json', 'binding.gyp', 'CMakeLists.txt', 'native']) fs.cpSync(path.join(ROOT, f), path.join(dir, f), { recursive: true });
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
    const r = await run('npm', ['run', '--silent', script], { cwd: dir, timeoutMs: 580_000 });
    expect(r.code, r.out.slice(-4000)).toBe(0);
    expect(
      fs
        .readdirSync(path.join(dir, 'build', 'Release'))
        .filter((f) => /\.(node|so)$/.test(f))
        .sort(),
    ).toEqual(['sevkit.node', 'sevkit_sim_preload.so']);
  });

  it('what it built runs the CLI on the simulator', { timeout: 180_000 }, async () => {
    // SEVKIT_PREBUILD points node-gyp-build at this build; SEVKIT_SIM_SHIM picks this shim.
    const env = { SEVKIT_PREBUILD: dir, SEVKIT_SIM_SHIM: path.join(dir, 'build', 'Release', 'sevkit_sim_preload.so') };
    const which = await run(process.execPath, ['-p', `require('node-gyp-build').path(${JSON.stringify(ROOT)})`], { cwd: ROOT, env, timeoutMs: 60_000 });
    expect(which.out.trim()).toBe(path.join(dir, 'build', 'Release', 'sevkit.node'));
    const cli = [process.execPath, ...cliEntry()];
    const r = await run(cli[0]!, [...cli.slice(1), 'sim', '--state', path.join(dir, 'sim-state'), '--', ...cli, 'show', 'version'], {
      cwd: ROOT,
      env,
      timeoutMs: 170_000,
    });
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/^\d+\.\d+\.\d+$/m);
  });
});
