/**
 * The layout rules ARCHITECTURE.md states, checked: no import cycles and no
 * upward or sideways imports between the layers (.dependency-cruiser.cjs),
 * no environment reads in the library outside its entry points, and the
 * public API documented (scripts/api-docs.mjs: ≥ 95% of the entry points'
 * exports carry a doc comment, docs/API.md generated from them is current).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '..');
// The CLIs, and the simulator's own entry points: the QEMU wrapper (a separate executable) and the
// environment contract `sevkit sim` gives its children.
const ENV_ENTRY_POINTS = [/^lib\/cli\//, /^lib\/sim\/qemu\/main\.ts$/, /^lib\/sim\/env\.ts$/];

function libFiles(dir = path.join(ROOT, 'lib')): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? libFiles(p) : e.name.endsWith('.ts') ? [path.relative(ROOT, p)] : [];
  });
}

describe('architecture', () => {
  it('the import graph of lib/ has no cycles and no upward or sideways imports', () => {
    let out = '';
    let failed = false;
    try {
      out = execFileSync(
        process.execPath,
        [path.join(ROOT, 'node_modules/dependency-cruiser/bin/dependency-cruise.mjs'), '--config', '.dependency-cruiser.cjs', '--output-type', 'err', 'lib'],
        { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
      );
    } catch (e) {
      failed = true;
      out = String((e as { stdout?: string }).stdout ?? '') + String((e as { stderr?: string }).stderr ?? '');
    }
    expect(failed ? out : '').toBe('');
  });

  it('no module below the entry points reads process.env', () => {
    const offenders = libFiles()
      .filter((f) => !ENV_ENTRY_POINTS.some((re) => re.test(f)))
      .flatMap((f) =>
        fs
          .readFileSync(path.join(ROOT, f), 'utf8')
          .split('\n')
          .map((line, i) => ({ line, at: `${f}:${i + 1}` }))
          .filter(({ line }) => /\bprocess\.env\b/.test(line) && !/^\s*(\/?\*|\/\/)/.test(line))
          .map(({ at, line }) => `${at}: ${line.trim()}`),
      );
    expect(offenders).toEqual([]);
  });

  it('the public API is documented and docs/API.md is current', () => {
    let out = '';
    let ok = true;
    try {
      out = execFileSync(process.execPath, [path.join(ROOT, 'scripts/api-docs.mjs'), '--check'], {
        cwd: ROOT,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (e) {
      ok = false;
      out = String((e as { stderr?: string }).stderr ?? '');
    }
    expect(ok, out).toBe(true);
    expect(out).toMatch(/exported symbols documented/);
  });
});
