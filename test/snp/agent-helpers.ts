/**
 * The simulated guest side for the guest agent and owner tests: a simulated SNP
 * platform (lib/sim/snp, TEST VCEK), the KDS stand-in, the TEST roots, and the
 * firmware fixtures whose digests the guest is configured with.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SimPlatform } from '../../lib/sim/platform.js';
import { SimSnpGuest } from '../../lib/sim/snp/guest.js';
import { SimKdsServer } from '../../lib/sim/snp/kds-server.js';
import { writeSnpGuestConfig, type SnpGuestConfig } from '../../lib/sim/snp/config.js';
import { KdsClient } from '../../lib/snp/kds.js';
import { snpLaunchDigest } from '../../lib/snp/digest.js';
import type { ProductRoots } from '../../lib/snp/roots.js';
import type { SnpProduct } from '../../lib/snp/product.js';
import type { ReportSource } from '../../lib/guest-agent/agent.js';
import { VECTORS } from '../helpers/cli.js';

export const AMDSEV = fs.readFileSync(path.join(VECTORS, 'sev-snp-measure', 'ovmf_AmdSev_suffix.bin'));
export const OVMFX64 = fs.readFileSync(path.join(VECTORS, 'sev-snp-measure', 'ovmf_OvmfX64_suffix.bin'));

/** The digest of AMDSEV (or another image) on 2 EPYC-v4 vCPUs, guest features 0x1, QEMU. */
export function digestOf(firmware: Buffer = AMDSEV, vcpus = 2): Buffer {
  return snpLaunchDigest({ firmware, vcpus, vcpuType: 'EPYC-v4' });
}

/** One simulated SNP guest with its KDS stand-in. */
export interface SimSnpSide {
  dir: string;
  platform: SimPlatform;
  guest: SimSnpGuest;
  kds: SimKdsServer;
  /** A KDS client pointed at the stand-in (its own cache dir). */
  kdsClient(): KdsClient;
  /** The simulator's TEST roots, for the verifier. */
  roots: (p: SnpProduct) => ProductRoots;
  /** What the guest's firmware recorded at launch. */
  configure(c: SnpGuestConfig): void;
  /** Reports straight from the simulated firmware (VMPL 0). */
  source: ReportSource;
  close(): Promise<void>;
}

export async function startSimSnpSide(): Promise<SimSnpSide> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-agent-'));
  const platform = SimPlatform.open(path.join(dir, 'state'), { seed: '1' });
  const guest = new SimSnpGuest(platform);
  const kds = await SimKdsServer.start(guest);
  let n = 0;
  return {
    dir,
    platform,
    guest,
    kds,
    kdsClient: () => new KdsClient({ baseUrl: kds.url, cacheDir: path.join(dir, `kds-${n++}`), sameRequestIntervalMs: 0 }),
    roots: (p: SnpProduct): ProductRoots => guest.testRoots(p),
    configure: (c) => writeSnpGuestConfig(platform.stateDir, c),
    source: async (rd) => guest.report(rd, 0),
    close: async () => {
      await kds.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
