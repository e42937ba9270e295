import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dpkgVersion } from '../../lib/host/probes.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-dpkg-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function statusFile(text: string): string {
  const f = path.join(dir, `status-${Math.random().toString(16).slice(2)}`);
  fs.writeFileSync(f, text);
  return f;
}

const stanza = (pkg: string, status: string, version: string) =>
  `Package: ${pkg}\nStatus: ${status}\nPriority: optional\nArchitecture: all\nVersion: ${version}\nDescription: x\n y\n`;

describe("dpkgVersion (dpkg's status file)", () => {
  it('finds an installed package first, in the middle and last in the file', () => {
    const a = stanza('ovmf', 'install ok installed', '2022.11-6+deb12u2');
    const b = stanza('qemu-system-x86', 'install ok installed', '1:7.2+dfsg-7+deb12u7');
    const c = stanza('zlib1g', 'install ok installed', '1:1.2.13.dfsg-1');
    const f = statusFile([a, b, c].join('\n'));
    expect(dpkgVersion(f, 'ovmf')).toBe('2022.11-6+deb12u2');
    expect(dpkgVersion(f, 'qemu-system-x86')).toBe('1:7.2+dfsg-7+deb12u7');
    expect(dpkgVersion(f, 'zlib1g')).toBe('1:1.2.13.dfsg-1');
  });

  it('a package removed with its config kept, or only a longer name, is not installed', () => {
    const f = statusFile(
      [
        stanza('ovmf-ia32', 'install ok installed', '2022.11-6'),
        stanza('ovmf', 'deinstall ok config-files', '2022.11-6'),
        stanza('libc6', 'install ok installed', '2.36'),
      ].join('\n'),
    );
    expect(dpkgVersion(f, 'ovmf')).toBeNull();
    expect(dpkgVersion(f, 'ovmf-ia32')).toBe('2022.11-6');
    expect(dpkgVersion(f, 'ovm')).toBeNull();
  });

  it('no status file, an empty one, or a last stanza without a blank line after it', () => {
    expect(dpkgVersion(path.join(dir, 'absent'), 'ovmf')).toBeNull();
    expect(dpkgVersion(statusFile(''), 'ovmf')).toBeNull();
    expect(dpkgVersion(statusFile(stanza('ovmf', 'install ok installed', '2025.02-8').trimEnd()), 'ovmf')).toBe('2025.02-8');
  });

  it("a version field of another package's stanza is never borrowed", () => {
    // ovmf's stanza has no Version line; the next stanza's must not be read as its own
    const f = statusFile(`Package: ovmf\nStatus: install ok installed\n\n${stanza('other', 'install ok installed', '9.9')}`);
    expect(dpkgVersion(f, 'ovmf')).toBeNull();
  });
});
