#!/usr/bin/env node
// The one test command (`npm test`): lint (ESLint with type-aware rules), the format
// check (Prettier over the code), then the whole vitest suite, ending with the plain
// line "N passed, N failed" that CI reads. Lint and format count as one check each:
// clean is one passed, any problem is one failed.
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const lint = spawnSync('npx', ['eslint', '.'], { stdio: 'inherit' });
const lintOk = lint.status === 0;
console.log(lintOk ? 'lint: clean' : `lint: FAILED (eslint exit ${lint.status ?? lint.signal})`);
const format = spawnSync('npm', ['run', '--silent', 'format:check'], { stdio: 'inherit' });
const formatOk = format.status === 0;
console.log(formatOk ? 'format: clean' : `format: FAILED (run \`npm run format\`; prettier exit ${format.status ?? format.signal})`);

const dir = mkdtempSync(path.join(tmpdir(), 'sevkit-test-'));
const report = path.join(dir, 'vitest.json');
const args = ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...process.argv.slice(2)];
const r = spawnSync('npx', args, { stdio: 'inherit' });
let passed = 0;
let failed = 0;
let skipped = 0;
try {
  const j = JSON.parse(readFileSync(report, 'utf8'));
  passed = j.numPassedTests;
  failed = j.numFailedTests + (j.numRuntimeErrorTestSuites ?? 0);
  skipped = (j.numPendingTests ?? 0) + (j.numTodoTests ?? 0);
  if (!j.success && failed === 0) failed = 1;
} catch {
  failed = Math.max(failed, 1);
}
rmSync(dir, { recursive: true, force: true });
for (const ok of [lintOk, formatOk]) {
  if (ok) passed++;
  else failed++;
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || r.status !== 0 ? 1 : 0);
