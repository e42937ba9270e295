/**
 * The vendored vectors are what test/fixtures/vectors/README.md says they are: every file listed there
 * exists with that size and sha256, and every file there is listed (so nothing is used without its origin).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { VECTORS } from './helpers/cli.js';

function listed(): Map<string, { bytes: number; sha256: string }> {
  const rows = new Map<string, { bytes: number; sha256: string }>();
  const readme = fs.readFileSync(path.join(VECTORS, 'README.md'), 'utf8');
  for (const m of readme.matchAll(/^\| `([^`]+)` \| (\d+) \| `([0-9a-f]{64})` \|/gm)) {
    rows.set(m[1]!, { bytes: Number(m[2]), sha256: m[3]! });
  }
  return rows;
}

function files(dir: string, base = dir): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return files(p, base);
    return p.endsWith('.md') ? [] : [path.relative(base, p)];
  });
}

describe('test/fixtures/vectors', () => {
  it('lists every file with its size and sha256, and nothing that is not there', () => {
    const rows = listed();
    const present = files(VECTORS).sort();
    expect(rows.size).toBeGreaterThan(100);
    expect([...rows.keys()].sort()).toEqual(present);
    for (const [rel, want] of rows) {
      const data = fs.readFileSync(path.join(VECTORS, rel));
      expect({ rel, bytes: data.length, sha256: createHash('sha256').update(data).digest('hex') }).toEqual({ rel, ...want });
    }
  });
});
