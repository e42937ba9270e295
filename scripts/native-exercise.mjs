#!/usr/bin/env node
// Exercises every entry point of the sevkit addon, including error paths and
// hostile arguments, as a plain Node script (no vitest, no tsx) so it can run
// under valgrind or with an ASan build of the addon (scripts/native-memcheck.sh).
//
//   node scripts/native-exercise.mjs [path/to/sevkit.node]
//
// Default addon: whatever node-gyp-build resolves (build/Release, else prebuilds/). When SEVKIT_SIM_SOCKET is set (run
// it under `sevkit sim -- ...`), the success paths (length probes, blob
// copy-out, every command) run against the simulator as well.
// SEVKIT_EXERCISE_ROUNDS repeats everything (default 2) to surface
// use-after-free and double-free bugs. Exit 0 only when every check passed.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const addonPath = path.resolve(process.argv[2] ?? require('node-gyp-build').path(root));
const b = require(addonPath);
const rounds = Number(process.env.SEVKIT_EXERCISE_ROUNDS ?? 2);
const sim = Boolean(process.env.SEVKIT_SIM_SOCKET);
const device = process.env.SEVKIT_SIM_DEVICE || '/dev/sev';

let passed = 0;
let failed = 0;
function check(cond, what) {
  if (cond) passed++;
  else {
    failed++;
    console.error(`FAIL: ${what}`);
  }
}
async function rejects(p, match, what) {
  try {
    await p;
    check(false, `${what}: resolved, expected rejection ${JSON.stringify(match)}`);
  } catch (e) {
    const ok = Object.entries(match).every(([k, v]) => e?.[k] === v);
    check(ok && e instanceof Error, `${what}: got ${e?.code}/${e?.syscall} ${e?.message}`);
  }
}
function throws(fn, Ctor, what) {
  try {
    fn();
    check(false, `${what}: did not throw`);
  } catch (e) {
    check(e instanceof Ctor && typeof e.code === 'string', `${what}: threw ${e?.name} ${e?.message}`);
  }
}

const cert = Buffer.alloc(0x824, 0x5a);
const commands = {
  platformStatus: (p) => b.platformStatus(p),
  factoryReset: (p) => b.factoryReset(p),
  pekGen: (p) => b.pekGen(p),
  pekCsr: (p) => b.pekCsr(p),
  pdhGen: (p) => b.pdhGen(p),
  pdhCertExport: (p) => b.pdhCertExport(p),
  pekCertImport: (p) => b.pekCertImport(p, cert, cert),
  getId: (p) => b.getId(p),
  snpPlatformStatus: (p) => b.snpPlatformStatus(p),
  snpCommit: (p) => b.snpCommit(p),
  snpSetConfig: (p) => b.snpSetConfig(p, Buffer.alloc(64)),
};
const readOnly = new Set(['platformStatus', 'getId', 'snpPlatformStatus', 'snpCommit']);

async function errorPaths() {
  for (const [name, call] of Object.entries(commands)) {
    await rejects(call('/nonexistent/sev'), { code: 'ENOENT', syscall: 'open', errno: -2, path: '/nonexistent/sev' }, `${name} missing`);
    await rejects(call('/dev/null'), { code: 'ENOTTY', syscall: 'ioctl', errno: -25 }, `${name} /dev/null`);
    // A read-only open of a directory succeeds; the fstat check then refuses what is no character device.
    await rejects(call('/tmp'), readOnly.has(name) ? { code: 'ENODEV', syscall: 'open' } : { code: 'EISDIR', syscall: 'open' }, `${name} directory`);
    const ro = '/sys/devices/system/cpu/online';
    if (existsSync(ro)) {
      const want = readOnly.has(name) || name === 'pdhCertExport' ? { code: 'ENODEV', syscall: 'open' } : { code: 'EACCES', syscall: 'open' };
      await rejects(call(ro), want, `${name} read-only node`);
    }
  }
}

function hostileArguments() {
  const badPaths = [undefined, null, 42, 1n, {}, [], Symbol('x'), () => 0, '', 'a'.repeat(5000), 'a'.repeat(1 << 20), '/dev/null\0x', Buffer.from('/dev/null')];
  for (const [name, call] of Object.entries(commands)) {
    for (const p of badPaths) throws(() => call(p), p === '' || (typeof p === 'string' && p.length > 4000) ? RangeError : TypeError, `${name}(${typeof p})`);
    throws(() => b[name](), TypeError, `${name}() without arguments`);
  }
  const blobs = [
    [Buffer.alloc(0), RangeError],
    [Buffer.alloc(0x4001), RangeError],
    [Buffer.alloc(1 << 24), RangeError],
    [new Uint16Array(8), TypeError],
    [new Float64Array(8), TypeError],
    [new DataView(new ArrayBuffer(8)), TypeError],
    [new ArrayBuffer(8), TypeError],
    ['abc', TypeError],
    [null, TypeError],
    [[1, 2, 3], TypeError],
  ];
  for (const [blob, Ctor] of blobs) {
    throws(() => b.pekCertImport('/dev/null', blob, cert), Ctor, `pekCertImport pek=${blob?.constructor?.name}`);
    throws(() => b.pekCertImport('/dev/null', cert, blob), Ctor, `pekCertImport oca=${blob?.constructor?.name}`);
  }
  for (const n of [0, 63, 65, 4096]) throws(() => b.snpSetConfig('/dev/null', Buffer.alloc(n)), RangeError, `snpSetConfig ${n} bytes`);
  throws(() => b.snpSetConfig('/dev/null'), TypeError, 'snpSetConfig without config');
  // kvmApiVersion takes only a path: the same abuse as the SEV commands' path argument.
  for (const p of badPaths)
    throws(() => b.kvmApiVersion(p), p === '' || (typeof p === 'string' && p.length > 4000) ? RangeError : TypeError, `kvmApiVersion(${typeof p})`);
  throws(() => b.kvmApiVersion(), TypeError, 'kvmApiVersion() without arguments');
  for (const v of [-1, 2 ** 32, 1.5, NaN, Infinity, '1', null, {}]) {
    throws(() => b.cpuid(v), typeof v === 'number' ? RangeError : TypeError, `cpuid(${String(v)})`);
    throws(() => b.cpuid(0, v), typeof v === 'number' ? RangeError : TypeError, `cpuid(0, ${String(v)})`);
  }
}

function tablesAndCpuid() {
  check(b.layout.sev_user_data_status.size === 12 && b.layout.sev_user_data_snp_status.offsets.reported_tcb_version === 24, 'layout table');
  check(b.constants.status.SEV_RET_INVALID_KEY === 0x27 && b.constants.commands.SNP_VLEK_LOAD === 12, 'constants table');
  check(b.constants.KVM_GET_API_VERSION === 0xae00, 'KVM_GET_API_VERSION constant');
  for (const leaf of [0, 1, 7, 0x80000000, 0x80000001, 0x80000002, 0x80000003, 0x80000004, 0x8000001f, 0xffffffff]) {
    const r = b.cpuid(leaf, 0);
    check(Array.isArray(r) && r.length === 4 && r.every((x) => Number.isInteger(x) && x >= 0 && x <= 0xffffffff), `cpuid(${leaf.toString(16)})`);
  }
}

// KVM_GET_API_VERSION through ordinary nodes (no /dev/kvm needed); the real /dev/kvm only if present.
async function kvmPaths() {
  const kvm = { command: 'KVM_GET_API_VERSION' };
  await rejects(b.kvmApiVersion('/nonexistent/kvm'), { ...kvm, code: 'ENOENT', syscall: 'open', errno: -2, path: '/nonexistent/kvm' }, 'kvmApiVersion missing');
  await rejects(b.kvmApiVersion('/dev/null'), { ...kvm, code: 'ENOTTY', syscall: 'ioctl', errno: -25, path: '/dev/null' }, 'kvmApiVersion /dev/null');
  await rejects(b.kvmApiVersion('/tmp'), { ...kvm, code: 'EISDIR', syscall: 'open' }, 'kvmApiVersion directory');
  const ro = '/sys/devices/system/cpu/online';
  // O_RDWR is refused, the O_RDONLY fallback opens, and a regular file is no character device.
  if (existsSync(ro)) await rejects(b.kvmApiVersion(ro), { ...kvm, code: 'ENODEV', syscall: 'open' }, 'kvmApiVersion read-only node');
  const many = await Promise.allSettled(Array.from({ length: 32 }, (_, i) => b.kvmApiVersion(i % 2 ? '/dev/null' : '/nonexistent/kvm')));
  check(
    many.every((r, i) => r.status === 'rejected' && r.reason.code === (i % 2 ? 'ENOTTY' : 'ENOENT')),
    '32 kvmApiVersion in flight',
  );
  if (existsSync('/dev/kvm')) {
    const v = await b.kvmApiVersion('/dev/kvm').catch((e) => e);
    check(v === 12 || (v instanceof Error && typeof v.code === 'string'), `kvmApiVersion /dev/kvm: ${v}`);
  }
}

async function simulatorPaths() {
  const st = await b.platformStatus(device);
  check(Buffer.isBuffer(st) && st.length === 12, 'status is 12 bytes');
  const ex = await b.pdhCertExport(device);
  check(ex.pdh.length === 0x824 && ex.certChain.length === 3 * 0x824, 'export lengths from the probe');
  const id = await b.getId(device);
  check(id.id.length === 64 && id.command === 'GET_ID2', 'GET_ID2 id');
  const csr = await b.pekCsr(device);
  check(csr.length === 0x824, 'PEK CSR');
  const snp = await b.snpPlatformStatus(device);
  check(snp.length === 32, 'SNP status');
  await b.pdhGen(device);
  const ex2 = await b.pdhCertExport(device);
  check(!ex2.pdh.equals(ex.pdh), 'PDH rotated');
  await b.pekGen(device);
  await b.snpCommit(device);
  const cfg = Buffer.alloc(64);
  snp.copy(cfg, 0, 24, 32); // reported_tcb = the current reported TCB
  await b.snpSetConfig(device, cfg);
  // Junk certificates: the firmware must refuse them, and nothing may be read past the buffers.
  await rejects(b.pekCertImport(device, Buffer.alloc(0x824, 0xff), Buffer.alloc(17, 1)), { code: 'EIO' }, 'import junk');
  await b.factoryReset(device);
  // Many in flight at once: each worker owns its own buffers.
  const all = await Promise.all(Array.from({ length: 64 }, (_, i) => (i % 2 ? b.platformStatus(device) : b.pdhCertExport(device))));
  check(
    all.every((r, i) => (i % 2 ? r.length === 12 : r.pdh.length === 0x824)),
    '64 concurrent commands',
  );
  // Drop the results and let GC run while more workers complete.
  const pending = Array.from({ length: 32 }, () => b.getId(device));
  if (globalThis.gc) globalThis.gc();
  await Promise.all(pending);
}

// The SNP guest device (/dev/sev-guest): argument abuse, error paths, and on the simulator
// reports, extended reports (the INVALID_LEN retry) and derived keys, many in flight.
async function guestPaths() {
  const data = Buffer.alloc(64, 0x11);
  for (const [n, Ctor] of [
    [0, RangeError],
    [63, RangeError],
    [65, RangeError],
    [1 << 20, RangeError],
    ['x', TypeError],
    [null, TypeError],
  ]) {
    const blob = typeof n === 'number' ? Buffer.alloc(n) : n;
    throws(() => b.snpGuestReport('/dev/null', blob, 0), Ctor, `snpGuestReport data=${String(n)}`);
    throws(() => b.snpGuestExtReport('/dev/null', blob, 0), Ctor, `snpGuestExtReport data=${String(n)}`);
  }
  for (const v of [4, -1, 2 ** 32, 1.5, NaN]) throws(() => b.snpGuestReport('/dev/null', data, v), RangeError, `snpGuestReport vmpl=${v}`);
  for (const n of [0, 31, 33]) throws(() => b.snpGuestDerivedKey('/dev/null', Buffer.alloc(n)), RangeError, `snpGuestDerivedKey ${n} bytes`);
  await rejects(b.snpGuestReport('/nonexistent/sev-guest', data, 0), { code: 'ENOENT', syscall: 'open' }, 'snpGuestReport missing');
  await rejects(b.snpGuestExtReport('/dev/null', data, 0), { code: 'ENOTTY', command: 'SNP_GET_EXT_REPORT' }, 'snpGuestExtReport /dev/null');
  await rejects(b.snpGuestDerivedKey('/dev/null', Buffer.alloc(32)), { code: 'ENOTTY', command: 'SNP_GET_DERIVED_KEY' }, 'snpGuestDerivedKey /dev/null');
  if (!sim) return;
  const g = '/dev/sev-guest';
  const rep = await b.snpGuestReport(g, data, 1);
  check(rep.length === 1184 && rep.subarray(0x50, 0x90).equals(data) && rep.readUInt32LE(0x30) === 1, 'guest report');
  const ext = await b.snpGuestExtReport(g, data, 0);
  check(ext.report.length === 1184 && ext.certs.length > 4096 && ext.certs.length % 4096 === 0, 'guest ext report after the INVALID_LEN retry');
  const key = await b.snpGuestDerivedKey(g, Buffer.alloc(32));
  check(key.length === 32, 'derived key');
  await rejects(
    b.snpGuestDerivedKey(g, Buffer.from([5, ...Buffer.alloc(31)])),
    { code: 'EIO', fwStatus: 0x16 },
    'derived key with a bad root: status in the response',
  );
  const all = await Promise.all(
    Array.from({ length: 48 }, (_, i) =>
      i % 3 === 0 ? b.snpGuestExtReport(g, data, 0) : i % 3 === 1 ? b.snpGuestReport(g, data, 0) : b.snpGuestDerivedKey(g, Buffer.alloc(32)),
    ),
  );
  check(
    all.every((r, i) => (i % 3 === 0 ? r.report.length === 1184 : i % 3 === 1 ? r.length === 1184 : r.length === 32)),
    '48 guest requests in flight',
  );
}

for (let r = 0; r < rounds; r++) {
  await guestPaths();
  hostileArguments();
  tablesAndCpuid();
  await errorPaths();
  await kvmPaths();
  if (sim) await simulatorPaths();
  if (globalThis.gc) globalThis.gc();
}
console.log(`native-exercise: ${passed} checks passed, ${failed} failed (${rounds} rounds, ${sim ? 'with' : 'without'} simulator, ${addonPath})`);
process.exit(failed === 0 ? 0 : 1);
