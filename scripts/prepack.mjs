#!/usr/bin/env node
// `npm pack` / `npm publish` run this first (the `prepack` script): a fresh dist/
// (no files left over from removed modules) and prebuilds/<platform>-<arch>/ with
// the addon and the simulator's LD_PRELOAD shim, so an install needs no compiler.
// prebuildify runs node-gyp and copies the shared libraries it finds in
// build/Release (the shim) beside the addon. glibc only: a musl prebuild needs a
// musl toolchain with libstdc++, which this build machine does not have.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => path.join(root, 'node_modules', '.bin', name);

function step(what, cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`prepack: ${what} failed (${r.error?.message ?? `exit ${r.status ?? r.signal}`})`);
    process.exit(1);
  }
}

fs.rmSync(path.join(root, 'dist'), { recursive: true, force: true });
fs.rmSync(path.join(root, 'prebuilds'), { recursive: true, force: true });
step('tsc', bin('tsc'), ['-p', 'tsconfig.build.json']);
step('bundle sev-status', process.execPath, [path.join(root, 'scripts/bundle-cli.mjs')]);
step('prebuildify', bin('prebuildify'), ['--napi', '--strip', '--tag-libc']);

const dir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
const want = ['sevkit.glibc.node', 'sevkit_sim_preload.so'];
const have = fs.existsSync(dir) ? fs.readdirSync(dir) : [];
const missing = want.filter((f) => !have.includes(f));
if (missing.length) {
  console.error(`prepack: ${path.relative(root, dir)} lacks ${missing.join(', ')} (has ${have.join(', ') || 'nothing'})`);
  process.exit(1);
}
console.log(`prepack: dist/ and ${path.relative(root, dir)}/{${want.join(',')}} ready`);
