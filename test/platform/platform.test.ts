/**
 * The platform suite: real behaviour of the SEV commands through the real addon
 * against whatever platform is present.
 *
 * - Simulator: when SEVKIT_SIM_SOCKET is set and the LD_PRELOAD shim is loaded
 *   in this process (the vitest global setup, or `sevkit sim -- npm test`).
 *   The suite then starts PRIVATE simulators on temp state dirs, each with a
 *   child process running SevPlatform through the real addon and the shim
 *   (peer.ts / sim-peer.ts; the shim reads its environment once at load), so
 *   its rotations, resets and injected faults never disturb other suites that
 *   share the global simulator.
 * - Hardware: SEVKIT_HW=1 (EPYC host) uses SEVKIT_DEVICE or /dev/sev. Commands
 *   that change the platform (rotate, PEK_GEN, import, reset) only run with
 *   SEVKIT_HW_MUTATE=1 as well, since they destroy the host's PDH/ownership.
 * - Otherwise everything skips, with the reason in the suite title.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SevPlatform, chipIdHex } from '../../lib/platform/platform.js';
import { SevError } from '../../lib/platform/errors.js';
import { RemoteSevError, startPrivateSim, type PlatformLike, type PrivateSim } from './peer.js';
import { SevRet } from '../../lib/platform/constants.js';
import { runCli } from '../helpers/cli.js';
import { USAGE, ecPublicKey, ecSigned, makeOca, signInto, spki, usageOf } from './sevcert-check.js';

const HW = process.env.SEVKIT_HW === '1';
const shimLoaded = (() => {
  try {
    return fs.readFileSync('/proc/self/maps', 'utf8').includes('sevkit_sim_preload');
  } catch {
    return false;
  }
})();
const SIM = !HW && Boolean(process.env.SEVKIT_SIM_SOCKET) && shimLoaded;
const MODE = HW ? 'hardware' : SIM ? 'simulator' : undefined;
const SKIP_REASON = process.env.SEVKIT_SIM_SOCKET
  ? 'SEVKIT_SIM_SOCKET is set but the sevkit_sim_preload shim is not loaded in this process'
  : process.env.SEVKIT_SIM_UNAVAILABLE
    ? `simulator unavailable: ${process.env.SEVKIT_SIM_UNAVAILABLE}`
    : 'no platform: set SEVKIT_HW=1 on an SEV host, or run under the simulator (SEVKIT_SIM_SOCKET)';
const MUTATE = SIM || (HW && process.env.SEVKIT_HW_MUTATE === '1');
const SIM_DEVICE = process.env.SEVKIT_SIM_DEVICE || '/dev/sev';
const CERT = 0x824;

/** In simulator mode errors come from the peer process: check it really threw a SevError there. */
function expectSevError(e: unknown): asserts e is SevError {
  expect(e).toBeInstanceOf(SevError);
  if (e instanceof RemoteSevError) expect(e.remoteIsSevError).toBe(true);
}

describe.skipIf(!MODE)(`platform suite on ${MODE ?? `nothing (skipped: ${SKIP_REASON})`}`, () => {
  let sim: PrivateSim | undefined;
  let device: string;
  let platform: PlatformLike;

  beforeAll(async () => {
    if (SIM) {
      device = SIM_DEVICE;
      sim = await startPrivateSim(device);
      platform = sim.platform;
    } else {
      device = process.env.SEVKIT_DEVICE || '/dev/sev';
      platform = new SevPlatform({ device });
    }
  });

  afterAll(async () => {
    await sim?.close();
  });

  const simState = () => JSON.parse(fs.readFileSync(path.join(sim!.dir, 'state.json'), 'utf8')) as { api: { major: number; minor: number; build: number } };
  const pemPublic = (name: string) => spki(crypto.createPublicKey(crypto.createPrivateKey(fs.readFileSync(path.join(sim!.dir, name)))));

  function checkChain(c: { pdh: Buffer; pek: Buffer; oca: Buffer; cek: Buffer }): void {
    for (const b of Object.values(c)) expect(b.length).toBe(CERT);
    expect([usageOf(c.pdh), usageOf(c.pek), usageOf(c.oca), usageOf(c.cek)]).toEqual([USAGE.PDH, USAGE.PEK, USAGE.OCA, USAGE.CEK]);
    expect(ecSigned(c.pek, c.pdh)).toBe(true); // PEK signs PDH
    expect(ecSigned(c.oca, c.pek)).toBe(true); // OCA signs PEK
    expect(ecSigned(c.cek, c.pek)).toBe(true); // CEK signs PEK
    expect(ecSigned(c.oca, c.oca)).toBe(true); // OCA self-signed
    expect(ecSigned(c.pek, c.oca)).toBe(false); // and the checker does reject wrong links
  }

  describe('read-only commands', () => {
    it('PLATFORM_STATUS decodes to sane values', async () => {
      const s = await platform.status();
      expect(['UNINIT', 'INIT', 'WORKING']).toContain(s.state);
      expect(['self', 'external']).toContain(s.owner);
      expect(s.apiMajor * 256 + s.apiMinor).toBeGreaterThanOrEqual(12); // SEV API >= 0.12 exists on every SEV part
      expect(s.guestCount).toBeGreaterThanOrEqual(0);
      if (SIM) {
        expect(s.flags & ~0x101).toBe(0); // the model sets only owner and CONFIG_ES
        const { api } = simState();
        expect(s).toMatchObject({ apiMajor: api.major, apiMinor: api.minor, build: api.build, state: 'INIT', owner: 'self', esEnabled: true, guestCount: 0 });
      }
    });

    it('PDH_CERT_EXPORT gives 4 × 0x824 certs whose signatures verify independently', async () => {
      const c = await platform.exportCerts();
      checkChain(c);
      if (SIM) {
        // The PDH is the key the state dir holds, so outside tools can check the simulator's work.
        expect(spki(ecPublicKey(c.pdh)).equals(pemPublic('pdh.key.pem'))).toBe(true);
        expect(spki(ecPublicKey(c.pek)).equals(pemPublic('pek.key.pem'))).toBe(true);
        expect(c.cek.equals(fs.readFileSync(path.join(sim!.dir, 'cek.cert')))).toBe(true);
        const certs = await import('../../lib/certs/index.js');
        expect(certs.verifyAskCek(fs.readFileSync(path.join(sim!.dir, 'ask.cert')), c.cek).ok).toBe(true);
      }
    });

    it('GET_ID2 returns a stable chip id', async () => {
      const a = await platform.getIdInfo();
      const b = await platform.getId();
      expect(a.id.length).toBeGreaterThan(0);
      expect(a.id.length).toBeLessThanOrEqual(0x4000);
      expect(a.id.equals(b)).toBe(true);
      expect(chipIdHex(a.id)).toMatch(new RegExp(`^[0-9A-F]{${2 * a.id.length}}$`));
      if (SIM) {
        expect(a.command).toBe('GET_ID2');
        expect(a.id.length).toBe(64);
      }
    });

    it('64 concurrent status calls all succeed with the same answer', async () => {
      const all = await Promise.all(Array.from({ length: 64 }, () => platform.statusRaw()));
      for (const r of all) expect(r.equals(all[0]!)).toBe(true);
    });

    it.runIf(SIM)('SNP_PLATFORM_STATUS decodes the simulated SNP firmware', async () => {
      const s = await platform.snpPlatformStatus();
      expect(s.state).toBe('INIT');
      expect(s.rmpInitialized).toBe(true);
      expect(s.currentTcbVersion).toBe(s.reportedTcbVersion);
      expect(s.apiMajor).toBe(simState().api.major);
    });
  });

  describe.runIf(MUTATE)('commands that change the platform', () => {
    it('PDH_GEN (rotate) changes the PDH, keeps the PEK, and the new PDH is signed by the PEK', async () => {
      const before = await platform.exportCerts();
      await platform.pdhGen();
      const after = await platform.exportCerts();
      expect(after.pdh.equals(before.pdh)).toBe(false);
      expect(after.pek.equals(before.pek)).toBe(true);
      checkChain(after);
      if (SIM) expect(spki(ecPublicKey(after.pdh)).equals(pemPublic('pdh.key.pem'))).toBe(true);
    });

    it('PEK_GEN replaces PEK and PDH; the chain still verifies', async () => {
      const before = await platform.exportCerts();
      await platform.pekGen();
      const after = await platform.exportCerts();
      expect(after.pek.equals(before.pek)).toBe(false);
      expect(after.pdh.equals(before.pdh)).toBe(false);
      expect(after.cek.equals(before.cek)).toBe(true);
      checkChain(after);
    });

    it('PEK_CSR is the current PEK key; PEK_CERT_IMPORT makes the platform externally owned; FACTORY_RESET undoes it', async () => {
      const csr = await platform.pekCsr();
      expect(csr.length).toBe(CERT);
      expect(usageOf(csr)).toBe(USAGE.PEK);
      const current = await platform.exportCerts();
      expect(spki(ecPublicKey(csr)).equals(spki(ecPublicKey(current.pek)))).toBe(true);

      const ocaKey = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
      const oca = makeOca(ocaKey);
      const pek = signInto(csr, USAGE.OCA, ocaKey);
      await platform.pekCertImport(pek, oca);
      expect((await platform.status()).owner).toBe('external');
      const owned = await platform.exportCerts();
      expect(owned.oca.equals(oca)).toBe(true);
      expect(ecSigned(oca, owned.pek)).toBe(true);
      checkChain(owned);

      await platform.factoryReset();
      const reset = await platform.exportCerts();
      expect((await platform.status()).owner).toBe('self');
      expect(reset.oca.equals(oca)).toBe(false);
      expect(reset.pek.equals(owned.pek)).toBe(false);
      checkChain(reset);
    });

    it.runIf(SIM)('SNP_SET_CONFIG sets the reported TCB and masks; SNP_COMMIT commits', async () => {
      const before = await platform.snpPlatformStatus();
      const older = before.currentTcbVersion - 1n; // a reported TCB may lag the current one
      await platform.snpSetConfig({ reportedTcb: older, maskChipId: true });
      const after = await platform.snpPlatformStatus();
      expect(after).toMatchObject({ reportedTcbVersion: older, maskChipId: true, maskChipKey: false, currentTcbVersion: before.currentTcbVersion });
      await platform.snpSetConfig({ reportedTcb: before.currentTcbVersion });
      await platform.snpCommit();
      const committed = await platform.snpPlatformStatus();
      expect(committed).toMatchObject({ reportedTcbVersion: before.currentTcbVersion, maskChipId: false });
    });

    it('a PEK not signed by the given OCA is refused by the firmware', async () => {
      const csr = await platform.pekCsr();
      const k1 = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
      const k2 = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
      const err = await platform.pekCertImport(signInto(csr, USAGE.OCA, k1), makeOca(k2)).catch((e: unknown) => e);
      expectSevError(err);
      expect(err.code).toBe('EIO');
      expect(err.fwStatusName).toMatch(/^SEV_RET_(INVALID_CERTIFICATE|BAD_SIGNATURE)$/);
      expect((await platform.status()).owner).toBe('self');
    });
  });

  describe.runIf(SIM)('error paths through the real addon (simulator fault injection)', () => {
    const statuses = Object.entries(SevRet).filter(([, v]) => v !== 0);
    it(`EIO carries every one of the ${statuses.length} firmware statuses by number and name`, async () => {
      for (const [name, code] of statuses) {
        sim!.daemon.platform.faults.add({ cmd: 'PLATFORM_STATUS', fwStatus: code >>> 0 });
        const err = (await platform.status().catch((e: unknown) => e)) as SevError;
        expectSevError(err);
        expect({ code: err.code, fwStatus: err.fwStatus, fwStatusName: err.fwStatusName, path: err.path, syscall: err.syscall }).toEqual({
          code: 'EIO',
          fwStatus: code,
          fwStatusName: name,
          path: device,
          syscall: 'ioctl',
        });
        expect(err.message).toContain(`${device}: PLATFORM_STATUS failed: EIO, firmware status ${name}`);
      }
      expect((await platform.status()).state).toBe('INIT');
    });

    it('driver errnos map to their codes (EBUSY, ENOTSUPP=524, EINVAL) without a firmware status', async () => {
      const cases: [string, string, number | string, string][] = [
        ['FACTORY_RESET', 'factoryReset', 'EBUSY', 'EBUSY'],
        ['GET_ID2', 'getId', 524, 'ENOTSUPP'],
        ['SNP_COMMIT', 'snpCommit', 'EINVAL', 'EINVAL'],
      ];
      for (const [cmd, method, errno, code] of cases) {
        sim!.daemon.platform.faults.add({ cmd, errno });
        const err = (await (platform as unknown as Record<string, () => Promise<unknown>>)[method]!.call(platform).catch((e: unknown) => e)) as SevError;
        expectSevError(err);
        expect(err.code).toBe(code);
        expect(err.fwStatus).toBeUndefined();
        expect(err.message.split('\n')).toHaveLength(1);
      }
    });

    it('every errno the driver can return is named as Node names it', async () => {
      const { getSystemErrorName } = await import('node:util');
      // 1..133 covers every Linux errno; the addon's table and the TS fallback must agree with Node.
      for (let errno = 1; errno <= 133; errno++) {
        let want: string;
        try {
          want = getSystemErrorName(-errno);
        } catch {
          continue;
        }
        if (want.startsWith('Unknown')) continue;
        sim!.daemon.platform.faults.add({ cmd: 'PLATFORM_STATUS', errno });
        const err = (await platform.status().catch((e: unknown) => e)) as SevError;
        expectSevError(err);
        expect({ errno, code: err.code, negErrno: err.errno }).toEqual({ errno, code: errno === 5 ? 'EIO' : want, negErrno: -errno });
      }
    });

    it('GET_ID2 missing in the kernel (EINVAL) falls back to GET_ID with the same id', async () => {
      const id2 = await platform.getId();
      sim!.daemon.platform.faults.add({ cmd: 'GET_ID2', errno: 'EINVAL' });
      const legacy = await platform.getIdInfo();
      expect(legacy.command).toBe('GET_ID');
      expect(legacy.id.subarray(0, 64).equals(id2.subarray(0, 64))).toBe(true);
    });

    it('a node not writable for us: export still works while INIT (read-only fallback), write commands get EACCES', async () => {
      const s2 = await startPrivateSim(device);
      try {
        s2.daemon.platform.faults.add({ on: 'open', cmd: 'O_RDWR', errno: 'EACCES', times: 'always' });
        const p = s2.platform;
        checkChain(await p.exportCerts());
        await expect(p.pdhGen()).rejects.toMatchObject({ code: 'EACCES', syscall: 'open', path: device });
        await expect(p.factoryReset()).rejects.toMatchObject({ code: 'EACCES' });
        expect((await p.status()).state).toBe('INIT');
      } finally {
        await s2.close();
      }
    });

    it('EPERM: PDH_CERT_EXPORT on an UNINIT platform through a read-only open', async () => {
      const s3 = await startPrivateSim(device, { bootState: 'UNINIT' });
      try {
        const p = s3.platform;
        expect((await p.status()).state).toBe('UNINIT');
        s3.daemon.platform.faults.add({ on: 'open', cmd: 'O_RDWR', errno: 'EACCES', times: 'always' });
        const err = await p.exportCerts().catch((e: unknown) => e);
        expectSevError(err);
        expect(err).toMatchObject({ code: 'EPERM', syscall: 'ioctl', command: 'PDH_CERT_EXPORT', path: device });
        expect(err.message).toMatch(/PDH_CERT_EXPORT failed: EPERM, operation needs the device opened read-write/);
        s3.daemon.platform.faults.clear();
        // With write access the driver INITs implicitly and the export succeeds.
        checkChain(await p.exportCerts());
      } finally {
        await s3.close();
      }
    });
  });

  describe.runIf(SIM)('sevkit CLI on the simulator', () => {
    // The private simulator's environment (its shim only, its socket and state dir).
    const env = () => ({ ...sim!.env });

    it('show version|guests|flags|identifier print what sevctl prints', async () => {
      const [v, g, f, id, vj] = await Promise.all([
        runCli(['show', 'version'], { env: env() }),
        runCli(['show', 'guests'], { env: env() }),
        runCli(['show', 'flags'], { env: env() }),
        runCli(['show', 'identifier'], { env: env() }),
        runCli(['show', 'version', '--json'], { env: env() }),
      ]);
      const { api } = simState();
      const s = await platform.status();
      expect(v).toMatchObject({ code: 0, stdout: `${api.major}.${api.minor}.${api.build}\n`, stderr: '' });
      expect(g).toMatchObject({ code: 0, stdout: `${s.guestCount}\n` });
      expect(f).toMatchObject({ code: 0, stdout: `${s.owner === 'external' ? 'owned\n' : ''}${s.esEnabled ? 'es\n' : ''}` });
      expect(id).toMatchObject({ code: 0, stdout: `${chipIdHex(await platform.getId())}\n` });
      expect(JSON.parse(vj.stdout)).toEqual({ apiMajor: api.major, apiMinor: api.minor, build: api.build, version: `${api.major}.${api.minor}.${api.build}` });
    });

    it('export writes PDH‖PEK‖OCA‖CEK (8336 bytes); --full appends the simulator ASK‖ARK; rotate changes the PDH', async () => {
      const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-export-'));
      try {
        const [e1, e2] = await Promise.all([
          runCli(['export', path.join(out, 'chain.cert')], { env: env() }),
          runCli(['export', '--full', path.join(out, 'full.cert')], { env: env() }),
        ]);
        expect(e1).toMatchObject({ code: 0, stdout: '', stderr: '' });
        expect(e2).toMatchObject({ code: 0, stderr: '' });
        const chain = fs.readFileSync(path.join(out, 'chain.cert'));
        expect(chain.length).toBe(8336);
        const c = await platform.exportCerts();
        expect(chain.equals(Buffer.concat([c.pdh, c.pek, c.oca, c.cek]))).toBe(true);
        const caBytes = Buffer.concat([fs.readFileSync(path.join(sim!.dir, 'ask.cert')), fs.readFileSync(path.join(sim!.dir, 'ark.cert'))]);
        expect(fs.readFileSync(path.join(out, 'full.cert')).equals(Buffer.concat([chain, caBytes]))).toBe(true);
        expect(fs.readdirSync(out).sort()).toEqual(['chain.cert', 'full.cert']); // no temp files left

        const bad = await Promise.all([
          runCli(['export', path.join(out, 'no-such-dir', 'x.cert')], { env: env() }),
          runCli(['export', out], { env: env() }),
          runCli(['export', '--json', path.join(out, 'j.cert')], { env: env() }),
        ]);
        expect(bad[0]!.code).toBe(1);
        expect(bad[0]!.stderr).toBe(`sevkit: ${path.join(out, 'no-such-dir', 'x.cert')}: cannot write the certificate chain: ENOENT\n`);
        expect(bad[1]!.code).toBe(1);
        expect(bad[1]!.stderr).toMatch(/is a directory/);
        expect(JSON.parse(bad[2]!.stdout)).toMatchObject({ path: path.join(out, 'j.cert'), bytes: 8336, full: false, cekSource: 'firmware' });
        fs.rmSync(path.join(out, 'j.cert'));

        const r = await runCli(['rotate'], { env: env() });
        expect(r).toMatchObject({ code: 0, stdout: '', stderr: '' });
        expect((await platform.exportCerts()).pdh.equals(c.pdh)).toBe(false);
      } finally {
        fs.rmSync(out, { recursive: true, force: true });
      }
    });

    it('a firmware failure prints one line with the path, EIO and the status name, exit 1, and writes nothing', async () => {
      const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-export-'));
      try {
        sim!.daemon.platform.faults.add({ cmd: 'PDH_CERT_EXPORT', fwStatus: 'INVALID_PLATFORM_STATE' });
        const r = await runCli(['export', path.join(out, 'chain.cert')], { env: env() });
        expect(r.code).toBe(1);
        expect(r.stdout).toBe('');
        expect(r.stderr).toBe(
          `sevkit: ${device}: PDH_CERT_EXPORT failed: EIO, firmware status SEV_RET_INVALID_PLATFORM_STATE (0x01): Platform state is invalid\n`,
        );
        expect(fs.readdirSync(out)).toEqual([]);
        sim!.daemon.platform.faults.add({ cmd: 'FACTORY_RESET', errno: 'EBUSY' });
        const z = await runCli(['reset'], { env: env() });
        expect(z.code).toBe(1);
        expect(z.stderr).toMatch(new RegExp(`^sevkit: ${device}: FACTORY_RESET failed: EBUSY, firmware busy .*\\n$`));
      } finally {
        fs.rmSync(out, { recursive: true, force: true });
      }
    });
  });
});
