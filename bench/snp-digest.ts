/**
 * SNP launch digest speed, next to its primitive (SHA-384) measured in the same run, as ratios:
 *  - a full digest of a 4 MiB firmware (1024 firmware pages + metadata + 4 VMSAs), cold (firmware hashed);
 *  - a digest per extra variant on the hashed firmware (the prefix cached: only the metadata chain and VMSAs);
 *  - one more vCPU on a prefix (what the diagnosis's count scan costs);
 *  - the diagnosis's default space against a measurement nothing explains (every variant computed).
 * CPU time, not wall time (bench/cpu-bench.ts), so a loaded machine does not skew the ratios.
 *
 *   node --import tsx bench/snp-digest.ts
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { opsPerCpuSecond } from './cpu-bench.js';
import { extendSnpVmsas, loadSnpFirmware, snpLaunchDigest, snpPrefix } from '../lib/snp/digest.js';
import { diagnoseSnpDigest } from '../lib/snp/diagnose.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tail = fs.readFileSync(path.join(ROOT, 'test/fixtures/vectors/sev-snp-measure/ovmf_AmdSev_suffix.bin'));
// A 4 MiB image whose last 4 KiB carry the real footer table and SEV metadata.
const firmware = Buffer.concat([crypto.randomBytes(4 * 1024 * 1024 - tail.length), tail]);
const pages = firmware.length / 4096;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 1);

const page = crypto.randomBytes(4096);
const pageInfo = crypto.randomBytes(0x70);
const sha384Page = opsPerCpuSecond(() => crypto.createHash('sha384').update(page).digest(), SECONDS);
const sha384Info = opsPerCpuSecond(() => crypto.createHash('sha384').update(pageInfo).digest(), SECONDS);

const full = opsPerCpuSecond(() => snpLaunchDigest({ firmware, vcpus: 4, vcpuType: 'EPYC-v4' }), SECONDS * 2);
const fw = loadSnpFirmware(firmware);
fw.ovmfHash();
let n = 0;
const sigs = [0x800f12, 0xa00f11, 0xa10f10, 0xb00f00];
const variant = opsPerCpuSecond(() => snpLaunchDigest({ firmware: fw, vcpus: 4, vcpuSig: sigs[n++ % 4]!, guestFeatures: n % 2 ? 0x1n : 0x21n }), SECONDS);
const prefix = snpPrefix(fw);
const vmsas = opsPerCpuSecond(() => extendSnpVmsas(prefix, fw, { vcpus: 4, vcpuSig: sigs[n++ % 4]!, guestFeatures: 1n }), SECONDS);
const g = prefix.clone();
const ap = crypto.createHash('sha384').update(page).digest();
const perVcpu = opsPerCpuSecond(() => g.updateVmsaHash(ap), SECONDS);

const cpu0 = process.cpuUsage();
const d = diagnoseSnpDigest({ measurement: crypto.randomBytes(48), firmwares: [{ name: 'OVMF.fd', image: fw }] });
const u = process.cpuUsage(cpu0);
const diagSeconds = (u.user + u.system) / 1e6;

const f0 = (x: number) => x.toFixed(0);
console.log(`primitives: SHA-384 of a 4 KiB page ${f0(sha384Page)}/s, of a 112-byte PAGE_INFO ${f0(sha384Info)}/s`);
console.log(
  `full digest (4 MiB firmware, ${pages} pages, 4 vCPUs, cold): ${full.toFixed(1)}/s = ${(sha384Page / full).toFixed(0)} page hashes' time (${pages} page + ${pages + 36} PAGE_INFO hashes are needed)`,
);
console.log(
  `per extra variant (firmware hashed once; metadata chain + 2 VMSA pages + 4 steps): ${f0(variant)}/s = ${(sha384Info / variant).toFixed(1)} PAGE_INFO hashes' time; ${(variant / full).toFixed(0)}x the full digest`,
);
console.log(`VMSAs only on a cached prefix (2 pages + 4 steps): ${f0(vmsas)}/s = ${(sha384Info / vmsas).toFixed(1)} PAGE_INFO hashes' time`);
console.log(`one more vCPU on a prefix: ${f0(perVcpu)}/s = ${(sha384Info / perVcpu).toFixed(2)} PAGE_INFO hashes' time`);
console.log(
  `diagnosis, default space, unexplained: ${d.searched} digests in ${(diagSeconds * 1000).toFixed(0)} ms CPU = ${f0(d.searched / diagSeconds)} digests/s`,
);
