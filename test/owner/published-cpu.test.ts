/**
 * The reference CRN publishes, in its allocation answer, the vCPU count and -cpu model it will launch the
 * VM with, so an SEV-ES owner can predict the VMSAs (the host's word is only an input: the measurement still
 * decides). Without a pinned model (QEMU's/aleph's host default) no cpu is claimed.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { CrnService } from '../../lib/crn/service.js';
import { EthWallet } from '../../lib/aleph/wallet.js';
import { CrnClient } from '../../lib/owner/client.js';
import { makeCa, makePlatform, ModelLauncher, StaticCerts } from '../crn/fake-sev.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-pubcpu-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function allocateOn(cpu: string | undefined): Promise<Record<string, unknown>> {
  const platform = makePlatform(makeCa());
  const launcher = Object.assign(new ModelLauncher(platform), cpu ? { cpu } : {});
  const fw = path.join(tmp, 'fw.fd');
  fs.writeFileSync(fw, crypto.randomBytes(4096));
  const service = new CrnService({
    domain: '127.0.0.1',
    certs: new StaticCerts(platform.certs),
    launcher,
    runDir: fs.mkdtempSync(path.join(tmp, 'run-')),
    allocationToken: 'tok',
  });
  const server = http.createServer((q, r) => service.handler(q, r));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return await new CrnClient({ url }).allocate('tok', {
      ref: crypto.randomBytes(32).toString('hex'),
      owner: EthWallet.generate().address,
      firmware: fw,
      policy: 5,
      vcpus: 3,
      memory_mb: 256,
    });
  } finally {
    await service.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
}

describe('the allocation answer', () => {
  it('names the vCPU count and the pinned -cpu model', async () => {
    expect(await allocateOn('EPYC-v4')).toMatchObject({ state: 'allocated', policy: 5, vcpus: 3, cpu: 'EPYC-v4' });
  });
  it('claims no model when none is pinned', async () => {
    const a = await allocateOn(undefined);
    expect(a).toMatchObject({ vcpus: 3 });
    expect(a).not.toHaveProperty('cpu');
  });
});
