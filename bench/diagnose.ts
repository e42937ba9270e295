/**
 * Measurement diagnosis speed: the default SEV-ES search space (vCPU counts 1..64, every CPU candidate,
 * both VMSA variants, both SEV_FEATURES values) over a 4 MiB firmware, against a blob nothing explains
 * (the worst case: every variant is computed). Prints variants per CPU-second next to SHA-256 over one
 * 4 KiB page measured in the same run, and their ratio (1.0 would be one page hash per variant).
 *
 *   node --import tsx bench/diagnose.ts
 */
import crypto from 'node:crypto';
import { diagnoseMeasurement } from '../lib/launch/index.js';
import { Policy } from '../lib/launch/policy.js';
import { opsPerCpuSecond } from './cpu-bench.js';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tail = fs.readFileSync(path.join(ROOT, 'test/fixtures/vectors/sev-snp-measure/ovmf_AmdSev_suffix.bin'));
// A 4 MiB image whose last 4 KiB carry the real footer table (reset block, secret area).
const firmware = Buffer.concat([crypto.randomBytes(4 * 1024 * 1024 - tail.length), tail]);
const tik = crypto.randomBytes(16);
const sevInfo = { apiMajor: 1, apiMinor: 55, buildId: 21, policy: 0x5 };
const policy = Policy.from(0x5);

const run = () =>
  diagnoseMeasurement({
    measurement: crypto.randomBytes(48),
    sevInfo,
    tik,
    firmwares: [{ name: 'OVMF.fd', image: firmware }],
    kernel: null,
    expected: { policy },
  });

const first = run();
const cpu0 = process.cpuUsage();
const rounds = 3;
let searched = 0;
for (let i = 0; i < rounds; i++) searched += run().searched;
const u = process.cpuUsage(cpu0);
const seconds = (u.user + u.system) / 1e6;
const page = crypto.randomBytes(4096);
const pageHashes = opsPerCpuSecond(() => crypto.createHash('sha256').update(page).digest(), 1);
const variantsPerSecond = searched / seconds;
console.log(
  `default space: ${first.searched} variants (${first.explained ? 'explained' : 'not explained'}), ${((seconds / rounds) * 1000).toFixed(0)} ms CPU per search`,
);
console.log(`diagnose: ${variantsPerSecond.toFixed(0)} variants/s; SHA-256 of one 4 KiB page: ${pageHashes.toFixed(0)}/s`);
console.log(`ratio: ${(pageHashes / variantsPerSecond).toFixed(2)} page hashes' time per variant`);
