#!/usr/bin/env node
// After tsc: dist/cli/sev-status.js becomes one file with the modules it imports (esbuild).
// sev-status runs from systemd timers and monitoring, and its start-up is measured against a
// bare `node -e 0` (bench/startup.ts): loading ~25 small ESM files cost ~12 ms of it, one
// file does not. Only that entry is bundled; the library, `sevkit` and the rest of dist/ stay
// one module per source file. node-gyp-build stays external (it finds the addon at run time).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const entry = path.join(root, 'dist/cli/sev-status.js');
if (!fs.existsSync(entry)) {
  console.error('bundle-cli: dist/cli/sev-status.js is missing; run tsc first');
  process.exit(1);
}
const r = buildSync({
  entryPoints: [entry],
  outfile: entry,
  allowOverwrite: true,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  legalComments: 'none',
  logLevel: 'warning',
});
if (r.errors.length) process.exit(1);
