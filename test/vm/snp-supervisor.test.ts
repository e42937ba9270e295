/** The Supervisor's SNP path up to spawning QEMU: capability check, spec checks, nothing left behind on a refusal. */
import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { Supervisor, VmLaunchError, VmSnpError } from '../../lib/vm/index.js';
import { filesUnder, tmpRunRoot } from './helpers.js';

const root = tmpRunRoot('snpsup');
const bin = path.join(root, 'bin');
fs.mkdirSync(bin);
const firmware = path.join(root, 'OVMF.fd');
fs.writeFileSync(firmware, Buffer.alloc(65536));
const runRoot = path.join(root, 'run');
fs.mkdirSync(runRoot);

/** A QEMU stand-in that only answers -version (anything else would fail the test by exiting 3). */
function fakeQemu(name: string, banner: string): string {
  const f = path.join(bin, name);
  fs.writeFileSync(f, `#!/bin/sh\nif [ "$1" = "-version" ]; then echo "${banner}"; exit 0; fi\nexit 3\n`, { mode: 0o755 });
  return f;
}

afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

async function refusal(qemu: string, spec: Record<string, unknown>): Promise<Error> {
  const sup = new Supervisor({ qemu, runRoot, hostAddressBits: { cbitpos: 51, reducedPhysBits: 1 } });
  const err = (await sup.launch({ name: 'vm1', firmware, ...spec }).catch((e: unknown) => e)) as Error;
  expect(err).toBeInstanceOf(Error);
  expect(sup.list()).toEqual([]);
  expect(filesUnder(runRoot)).toEqual([]);
  return err;
}

describe('Supervisor: SNP launches refused before QEMU runs', () => {
  it("Debian's QEMU 7.2: one line naming the version found and the one needed", async () => {
    const qemu = fakeQemu('qemu72', 'QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)');
    const err = await refusal(qemu, { snp: {} });
    expect(err).toBeInstanceOf(VmSnpError);
    expect(err.message).toBe(`QEMU 7.2.22 (${qemu}) cannot launch SEV-SNP guests: the sev-snp-guest object needs QEMU >= 9.1`);
  });

  it('a QEMU that cannot be run, or prints no version', async () => {
    expect((await refusal(path.join(bin, 'absent'), { snp: {} })).message).toMatch(/^cannot run QEMU .*absent -version: ENOENT$/);
    const silent = fakeQemu('silent', 'hello');
    expect((await refusal(silent, { snp: {} })).message).toMatch(/cannot tell the version of QEMU/);
  });

  it('bad SNP values on a capable QEMU: typed errors, the run directory removed', async () => {
    const qemu = fakeQemu('qemu92', 'QEMU emulator version 9.2.0');
    expect(await refusal(qemu, { snp: { policy: 0x10000 } })).toMatchObject({ code: 'ERR_VM_SNP_POLICY' });
    expect(await refusal(qemu, { snp: { hostData: Buffer.alloc(16) } })).toMatchObject({ code: 'ERR_VM_SNP_HOST_DATA' });
    expect(await refusal(qemu, { snp: { idBlock: Buffer.alloc(96) } })).toMatchObject({ code: 'ERR_VM_SNP_ID_BLOCK' });
    const both = await refusal(qemu, { snp: {}, sev: { policy: 1 } });
    expect(both).toBeInstanceOf(VmLaunchError);
    expect(both).toMatchObject({ code: 'ERR_VM_SPEC', message: 'VM vm1: give sev or snp, not both' });
  });
});
