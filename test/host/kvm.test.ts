/**
 * KVM_GET_API_VERSION in `sevkit ok` and sev-status: the version reported is the
 * ioctl's answer (through the binding's kvmApiVersion), its failures use sevctl's
 * wording, and a fixture root only gets the ioctl when its dev/kvm is a character
 * device. No /dev/kvm needed: the fixture's dev/kvm points at /dev/null.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { setBinding, type NativeBinding } from '../../lib/binding.js';
import { HostFs, HOST_PATHS } from '../../lib/host/fs.js';
import { probeOkFacts } from '../../lib/host/gather.js';
import { formatOkLine, runOk } from '../../lib/host/okTree.js';
import { kvmIoctlWanted, probeKvm } from '../../lib/host/probes.js';
import { buildReport } from '../../lib/host/status.js';
import { FIXES } from '../../lib/host/fixes.js';
import type { HostFixture } from '../../lib/sim/host-fixture.js';
import { cleanup, fixture, probeFixture } from './helpers.js';

afterAll(cleanup);
afterEach(() => setBinding(null));

/** A fixture whose dev/kvm is a character device (/dev/null), i.e. one that asks for the ioctl. */
function charKvmFixture(): HostFixture {
  const fx = fixture();
  const node = path.join(fx.root, 'dev/kvm');
  fs.rmSync(node);
  fs.symlinkSync('/dev/null', node);
  return fx;
}

function sysError(code: string, errno: number, syscall: 'open' | 'ioctl', p: string): Error {
  return Object.assign(new Error(`${syscall} ${p}: ${code}`), { code, errno: -errno, syscall, path: p, command: 'KVM_GET_API_VERSION' });
}

/** A binding whose only entry point is kvmApiVersion; records the paths asked. */
function fakeKvm(answer: (p: string) => Promise<number>): { calls: string[] } {
  const calls: string[] = [];
  setBinding({ kvmApiVersion: (p: string) => (calls.push(p), answer(p)) } as unknown as NativeBinding);
  return { calls };
}

async function kvmLine(fx: HostFixture): Promise<string> {
  const facts = await probeOkFacts({ fs: new HostFs(fx.root), cpuidFile: fx.cpuidFile });
  const lines = runOk(facts).lines.map((l) => formatOkLine(l));
  const line = lines.find((l) => l.includes('KVM supported'));
  if (!line) throw new Error(`no KVM line in ${lines.join('\n')}`);
  return line;
}

async function statusKvm(fx: HostFixture) {
  const r = buildReport(await probeFixture(fx), 'sev');
  const check = r.checks.find((c) => c.id === 'device.kvm')!;
  return { check, device: (r.kvm as { device: Record<string, unknown> }).device };
}

describe('KVM_GET_API_VERSION through the binding', () => {
  it('reports the ioctl’s answer, not the constant, with apiVersionSource "ioctl"', async () => {
    const fx = charKvmFixture();
    const { calls } = fakeKvm(async () => 13);
    expect(await kvmLine(fx)).toBe('[ PASS ] - KVM supported: API version: 13');
    // The ioctl went to the fixture's node, not the machine's /dev/kvm.
    expect(calls).toEqual([path.join(fx.root, 'dev/kvm')]);
    const { check, device } = await statusKvm(fx);
    expect(device).toMatchObject({ apiVersion: 13, apiVersionSource: 'ioctl' });
    expect(check).toMatchObject({ status: 'fail', detail: 'unexpected API version 13', fix: FIXES.kvmApi });
  });

  it('API version 12 from the ioctl passes both tools', async () => {
    const fx = charKvmFixture();
    fakeKvm(async () => 12);
    expect(await kvmLine(fx)).toBe('[ PASS ] - KVM supported: API version: 12');
    const { check, device } = await statusKvm(fx);
    expect(device).toMatchObject({ apiVersion: 12, apiVersionSource: 'ioctl' });
    expect(check.status).toBe('pass');
    expect(check.detail).toMatch(/, API version 12$/);
    expect(check.detail).not.toContain('ioctl not issued');
  });

  it.each<[string, () => Promise<number>, string, string]>([
    [
      'ENOTTY from the ioctl',
      async () => Promise.reject(sysError('ENOTTY', 25, 'ioctl', '/x')),
      'Error - accessing KVM device node failed',
      'KVM_GET_API_VERSION failed: ioctl: Inappropriate ioctl for device (os error 25)',
    ],
    [
      'EBADF from the ioctl',
      async () => Promise.reject(sysError('EBADF', 9, 'ioctl', '/x')),
      'Error - accessing KVM device node failed',
      'KVM_GET_API_VERSION failed: ioctl: EBADF (os error 9)',
    ],
    ['a negative answer', async () => -1, 'Error - accessing KVM device node failed', 'KVM_GET_API_VERSION failed: KVM_GET_API_VERSION returned -1'],
    ['a non-integer answer', async () => 1.5, 'Error - accessing KVM device node failed', 'KVM_GET_API_VERSION failed: KVM_GET_API_VERSION returned 1.5'],
    [
      'a non-system error',
      async () => Promise.reject(new Error('worker exploded\nstack')),
      'Error - accessing KVM device node failed',
      'KVM_GET_API_VERSION failed: worker exploded',
    ],
  ])('%s → sevctl’s “accessing KVM device node failed”', async (_n, answer, okMessage, detail) => {
    const fx = charKvmFixture();
    fakeKvm(answer);
    expect(await kvmLine(fx)).toBe(`[ FAIL ] - KVM supported: ${okMessage}`);
    const { check, device } = await statusKvm(fx);
    expect(device).toMatchObject({ apiVersion: null, apiVersionSource: 'ioctl', readable: true });
    expect(check).toMatchObject({ status: 'fail', detail, fix: FIXES.kvmApi });
  });

  it.each<[string, number, string]>([
    ['ENOENT', 2, 'No such file or directory (os error 2)'],
    ['EACCES', 13, 'Permission denied (os error 13)'],
  ])('%s from the ioctl’s own open → sevctl’s “Error reading /dev/kvm: (E)”', async (code, errno, text) => {
    const fx = charKvmFixture();
    fakeKvm(async (p) => Promise.reject(sysError(code, errno, 'open', p)));
    expect(await kvmLine(fx)).toBe(`[ FAIL ] - KVM supported: Error reading /dev/kvm: (${text})`);
    const { check, device } = await statusKvm(fx);
    expect(device).toMatchObject({ apiVersion: null, apiVersionSource: 'ioctl', readable: false });
    expect(check.status).toBe('fail');
  });

  it('the real addon on a /dev/null node: ENOTTY → “accessing KVM device node failed”', async () => {
    const fx = charKvmFixture();
    setBinding(null);
    expect(await kvmLine(fx)).toBe('[ FAIL ] - KVM supported: Error - accessing KVM device node failed');
    const { check, device } = await statusKvm(fx);
    expect(device).toMatchObject({ apiVersion: null, apiVersionSource: 'ioctl' });
    expect(check.detail).toBe('KVM_GET_API_VERSION failed: ioctl: Inappropriate ioctl for device (os error 25)');
  });
});

describe('the fixture-root seam', () => {
  it('a regular-file dev/kvm (the simulator’s fixture) never reaches the binding: 12, "assumed"', async () => {
    const fx = fixture();
    const { calls } = fakeKvm(async () => 99);
    expect(await kvmLine(fx)).toBe('[ PASS ] - KVM supported: API version: 12');
    const { check, device } = await statusKvm(fx);
    expect(device).toMatchObject({ apiVersion: 12, apiVersionSource: 'assumed' });
    expect(check.detail).toContain('(KVM_API_VERSION; ioctl not issued)');
    expect(calls).toEqual([]);
  });

  it('a missing dev/kvm fails on open before any ioctl: "none"', async () => {
    const fx = fixture({ devKvm: false });
    const { calls } = fakeKvm(async () => 12);
    expect(await kvmLine(fx)).toBe('[ FAIL ] - KVM supported: Error reading /dev/kvm: (No such file or directory (os error 2))');
    expect((await statusKvm(fx)).device).toMatchObject({ apiVersion: null, apiVersionSource: 'none' });
    expect(calls).toEqual([]);
  });

  it('an addon without kvmApiVersion (older build) falls back to the assumed constant', async () => {
    const fx = charKvmFixture();
    setBinding({} as unknown as NativeBinding);
    expect(await kvmLine(fx)).toBe('[ PASS ] - KVM supported: API version: 12');
    expect((await statusKvm(fx)).device).toMatchObject({ apiVersion: 12, apiVersionSource: 'assumed' });
  });

  it('asks the ioctl on the real root regardless of node type, under a fixture only for a character device', () => {
    expect(kvmIoctlWanted(new HostFs('/'))).toBe(true);
    expect(kvmIoctlWanted(new HostFs(''))).toBe(true);
    expect(kvmIoctlWanted(new HostFs(fixture().root))).toBe(false);
    expect(kvmIoctlWanted(new HostFs(charKvmFixture().root))).toBe(true);
  });

  it('the real root issues the ioctl on /dev/kvm itself when the node opens', async () => {
    // Simulate the real root's open check with the deny seam absent; only meaningful where /dev/kvm exists.
    const calls: string[] = [];
    const f = await probeKvm(new HostFs(''), async (p) => (calls.push(p), 12));
    if (fs.existsSync(HOST_PATHS.devKvm) && f.open.ok) {
      expect(calls).toEqual(['/dev/kvm']);
      expect(f).toMatchObject({ apiVersion: 12, apiSource: 'ioctl' });
    } else {
      expect(calls).toEqual([]);
      expect(f).toMatchObject({ apiVersion: null, apiSource: 'none' });
    }
  });
});
