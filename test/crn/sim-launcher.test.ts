/**
 * A CRN whose VMs are the simulator's VM-less guests in one daemon connection
 * (SimVmLauncher): the owner's whole launch verifies, the firmware counts the
 * guests, stopping decommissions them, SEV-ES is refused with a reason.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimDaemon } from '../../lib/sim/daemon.js';
import { SimClient } from '../../lib/sim/client.js';
import { SimVmLauncher } from '../../lib/crn/sim-launcher.js';
import { startCrnServer, type CrnServer } from '../../lib/crn/server.js';
import { EthWallet } from '../../lib/aleph/wallet.js';
import { CrnClient } from '../../lib/owner/client.js';
import { launchOnCrn } from '../../lib/owner/launch.js';
import { encodeCaChain } from '../../lib/certs/index.js';
import { simulatorCaChain } from '../../lib/sim/ca-chain.js';
import { makeDemoFirmware } from '../../lib/demo/demo.js';

const TOKEN = 'tok-' + crypto.randomBytes(8).toString('hex');
let tmp: string;
let daemon: SimDaemon;
let calls: SimClient;
let srv: CrnServer;
let firmware: string;
const owner = EthWallet.generate();

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sim-crn-launcher-'));
  daemon = await SimDaemon.start(path.join(tmp, 'sim'), { seed: 7 });
  calls = await SimClient.connect(daemon.socketPath);
  firmware = makeDemoFirmware(tmp).path;
  srv = await startCrnServer({
    host: '127.0.0.1',
    port: 0,
    domain: '127.0.0.1',
    runDir: path.join(tmp, 'run'),
    allocationToken: TOKEN,
    platformKind: 'simulated',
    launcher: new SimVmLauncher(calls),
    certs: {
      async exportCerts() {
        const { pdh, certChain } = await calls.pdhCertExport();
        const at = (i: number) => certChain.subarray(i * 0x824, (i + 1) * 0x824);
        return { pdh, pek: at(0), oca: at(1), cek: at(2) };
      },
    },
  });
});
afterAll(async () => {
  await srv?.close();
  calls?.close();
  await daemon?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function allocate(policy = 1): Promise<string> {
  const ref = crypto.randomBytes(32).toString('hex');
  await new CrnClient({ url: srv.url }).allocate(TOKEN, { ref, owner: owner.address, firmware, policy, vcpus: 1, memory_mb: 512 });
  return ref;
}

describe('SimVmLauncher: VM-less guests without a process each', () => {
  it('the owner verifies and launches three guests; the firmware holds them until the CRN stops them', async () => {
    const ca = encodeCaChain(simulatorCaChain(daemon.platform.stateDir)!);
    const refs = await Promise.all([allocate(), allocate(), allocate()]);
    const results = await Promise.all(
      refs.map((ref) =>
        launchOnCrn({
          client: new CrnClient({ url: srv.url, wallet: owner }),
          ref,
          firmware: fs.readFileSync(firmware),
          policy: 1,
          secret: Buffer.from('pw-' + ref.slice(0, 6)),
          ca,
          measurementTimeoutMs: 60_000,
        }),
      ),
    );
    expect(results.map((r) => (r.status as { status: string }).status)).toEqual(['running', 'running', 'running']);
    expect(refs.map((r) => srv.service.state(r))).toEqual(['running', 'running', 'running']);
    expect(daemon.platform.guests.size).toBeGreaterThanOrEqual(3);
    expect((await calls.status()).state).toBe('WORKING');
  });

  it('refuses an SEV-ES policy with the reason, and leaves no guest behind', async () => {
    const before = daemon.platform.guests.size;
    const ref = await allocate(0x5);
    const c = new CrnClient({ url: srv.url, wallet: owner, domain: '127.0.0.1' });
    const s = (await import('../../lib/launch/index.js')).createSession((await calls.pdhCertExport()).pdh, 0x5);
    await c.initialize(ref, { session: s.sessionB64, godh: s.godhB64 });
    for (let i = 0; i < 200 && srv.service.state(ref) === 'starting'; i++) await new Promise((r) => setTimeout(r, 20));
    const m = await c.measurementOnce(ref);
    expect(m.status).toBe(409);
    expect(m.detail).toMatch(/SEV-ES guests need the QEMU wrapper/);
    expect(daemon.platform.guests.size).toBe(before);
  });

  it('closing the CRN decommissions every guest', async () => {
    await srv.close();
    expect(daemon.platform.guests.size).toBe(0);
    expect((await calls.status()).state).toBe('INIT');
  });
});
