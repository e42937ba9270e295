/**
 * query-sev-attestation-report through the simulator's QEMU wrapper: the
 * report comes from the simulated firmware's ATTESTATION, carries the mnonce
 * sent and the launch digest the owner computes from the same firmware, and
 * verifies (lib/certs, `sevkit validate`) with the PEK of the platform's
 * exported chain. The first suite runs the wrapper's in-process firmware over a
 * private state dir (also where faults are armed); the second goes through the
 * suite-wide simulator daemon and the CLI.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Supervisor, type VmSpec } from '../../lib/vm/index.js';
import { QmpCommandError } from '../../lib/qmp/index.js';
import { computeLaunchDigest, createSession } from '../../lib/launch/index.js';
import { decodeLegacyReport, verifyLegacyReport } from '../../lib/certs/report.js';
import { decodeSevCert, decodeSevChain } from '../../lib/certs/index.js';
import { armFault, clearFaults } from '../../lib/sim/faults.js';
import { runCli, VECTORS } from '../helpers/cli.js';
import { filesUnder, processesMentioning, tmpRunRoot } from './helpers.js';
import { makeSimEnv, type SimEnv } from './simenv.js';

/** 4 KiB AmdSev OVMF suffix with a footer table and an SEV-ES reset block. */
const AMDSEV = path.join(VECTORS, 'sev-snp-measure/ovmf_AmdSev_suffix.bin');
const run = crypto.randomBytes(3).toString('hex');

function sevSpec(sim: SimEnv, name: string, policy: number, extra: Partial<VmSpec> = {}): VmSpec {
  const s = createSession(fs.readFileSync(path.join(sim.stateDir, 'pdh.cert')), policy);
  return { name, firmware: AMDSEV, memMb: 64, sev: { policy, godh: s.godhB64, session: s.sessionB64 }, ...extra };
}

async function qmpError(p: Promise<unknown>): Promise<QmpCommandError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(QmpCommandError);
  return e as QmpCommandError;
}

describe('query-sev-attestation-report on the wrapper (in-process firmware, private state)', () => {
  let sim: SimEnv;
  let root: string;
  let sup: Supervisor;

  beforeAll(async () => {
    sim = await makeSimEnv({ realQemu: 'none', private: true });
    root = tmpRunRoot('simattest');
    sup = new Supervisor({ qemu: sim.qemu, env: sim.env, runRoot: root, launchTimeoutMs: 30_000 });
  });

  afterAll(async () => {
    await sup?.stopAll();
    expect(processesMentioning(root)).toEqual([]);
    expect(filesUnder(root)).toEqual([]);
    fs.rmSync(root, { recursive: true, force: true });
    sim?.cleanup();
  });

  it('SEV: the report holds the mnonce, the owner-computed launch digest and the policy; it verifies with the PEK before and after cont', async () => {
    const vm = await sup.launch(sevSpec(sim, `att-${run}`, 0x1));
    const pek = decodeSevCert(fs.readFileSync(path.join(sim.stateDir, 'pek.cert')), { name: 'pek.cert' });
    // The PEK QEMU exports (query-sev-capabilities cert-chain = PEK ‖ OCA ‖ CEK) is the same one.
    const caps = await vm.qmpClient!.querySevCapabilities();
    expect(
      Buffer.from(caps['cert-chain'], 'base64')
        .subarray(0, 0x824)
        .equals(fs.readFileSync(path.join(sim.stateDir, 'pek.cert'))),
    ).toBe(true);
    const digest = computeLaunchDigest({ firmware: fs.readFileSync(AMDSEV) });

    const mnonce = crypto.randomBytes(16);
    const { data } = await vm.qmpClient!.querySevAttestationReport(mnonce.toString('base64'));
    const raw = Buffer.from(data, 'base64');
    expect(raw.length).toBe(208);
    const rep = decodeLegacyReport(raw);
    expect(rep.mnonce.equals(mnonce)).toBe(true);
    expect(rep.launchDigest.equals(digest)).toBe(true);
    expect([rep.policy, rep.sigUsage, rep.sigAlgo]).toEqual([0x1, 0x1002, 0x2]);
    expect(verifyLegacyReport(pek, raw)).toBe(true);

    const tampered = Buffer.from(raw);
    tampered[0x10] ^= 0x80; // launch digest
    expect(verifyLegacyReport(pek, tampered)).toBe(false);
    const wrongPolicy = Buffer.from(raw);
    wrongPolicy.writeUInt32LE(0x0, 0x30);
    expect(verifyLegacyReport(pek, wrongPolicy)).toBe(false);

    await vm.resume();
    expect((await vm.qmpClient!.querySev()).state).toBe('running');
    const mnonce2 = crypto.randomBytes(16);
    const raw2 = Buffer.from((await vm.qmpClient!.querySevAttestationReport(mnonce2.toString('base64'))).data, 'base64');
    const rep2 = decodeLegacyReport(raw2);
    expect(rep2.mnonce.equals(mnonce2)).toBe(true);
    expect(rep2.launchDigest.equals(digest)).toBe(true);
    expect(verifyLegacyReport(pek, raw2)).toBe(true);
    await vm.stop();
  });

  it('SEV-ES with 2 vCPUs: the reported digest covers the VMSAs', async () => {
    const vm = await sup.launch(sevSpec(sim, `att-es-${run}`, 0x5, { vcpus: 2, cpu: 'EPYC-v4' }));
    const firmware = fs.readFileSync(AMDSEV);
    const rep = decodeLegacyReport(Buffer.from((await vm.qmpClient!.querySevAttestationReport(Buffer.alloc(16, 7).toString('base64'))).data, 'base64'));
    expect(rep.policy).toBe(0x5);
    expect(rep.launchDigest.equals(computeLaunchDigest({ firmware, es: { numCpus: 2, vcpuType: 'EPYC-v4', vmType: 'legacy' } }))).toBe(true);
    expect(rep.launchDigest.equals(computeLaunchDigest({ firmware }))).toBe(false);
    await vm.stop();
  });

  it("bad input gets QEMU's errors: the decoded mnonce length (GLib decoding never fails), QAPI member checks", async () => {
    const vm = await sup.launch(sevSpec(sim, `att-bad-${run}`, 0x1));
    const q = vm.qmpClient!;
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ mnonce: 'AAAA' }, 'SEV: mnonce must be 16 bytes (got 3)'],
      [{ mnonce: crypto.randomBytes(17).toString('base64') }, 'SEV: mnonce must be 16 bytes (got 17)'],
      [{ mnonce: '' }, 'SEV: mnonce must be 16 bytes (got 0)'],
      [{ mnonce: '!!!!not*base64' }, 'SEV: mnonce must be 16 bytes (got 6)'],
      [{}, "Parameter 'mnonce' is missing"],
      [{ mnonce: 16 }, "Invalid parameter type for 'mnonce', expected: string"],
      [{ mnonce: 'AAAA', extra: 1 }, "Parameter 'extra' is unexpected"],
    ];
    for (const [args, desc] of cases) {
      const e = await qmpError(q.execute('query-sev-attestation-report', args));
      expect([e.errorClass, e.desc]).toEqual(['GenericError', desc]);
    }
    // 22 digits + '==' is exactly 16 bytes.
    const zeros = await q.querySevAttestationReport('AAAAAAAAAAAAAAAAAAAAAA==');
    expect(decodeLegacyReport(Buffer.from(zeros.data, 'base64')).mnonce.equals(Buffer.alloc(16))).toBe(true);
    // GLib skips characters outside the alphabet, as QEMU does: whitespace inside is fine.
    const spaced = `${Buffer.alloc(16, 9).toString('base64').slice(0, 8)} \n${Buffer.alloc(16, 9).toString('base64').slice(8)}`;
    const r = await q.querySevAttestationReport(spaced);
    expect(decodeLegacyReport(Buffer.from(r.data, 'base64')).mnonce.equals(Buffer.alloc(16, 9))).toBe(true);
    await vm.stop();
  });

  it("an armed ATTESTATION fault surfaces as QEMU's length-query failure; the next request works", async () => {
    const vm = await sup.launch(sevSpec(sim, `att-fault-${run}`, 0x1));
    clearFaults(sim.stateDir);
    armFault(sim.stateDir, { on: 'launch', cmd: 'ATTESTATION', fwStatus: 'INVALID_PLATFORM_STATE' });
    const e = await qmpError(vm.qmpClient!.querySevAttestationReport(Buffer.alloc(16).toString('base64')));
    expect(e.desc).toBe('SEV: Failed to query the attestation report length ret=-1 fw_err=1 (Platform state is invalid)');
    const ok = await vm.qmpClient!.querySevAttestationReport(Buffer.alloc(16).toString('base64'));
    expect(Buffer.from(ok.data, 'base64').length).toBe(208);
    clearFaults(sim.stateDir);
    await vm.stop();
  });

  it('a VM without a sev-guest object: "SEV is not enabled"', async () => {
    const vm = await sup.launch({ name: `att-plain-${run}`, firmware: AMDSEV, memMb: 64 });
    const e = await qmpError(vm.qmpClient!.querySevAttestationReport(Buffer.alloc(16).toString('base64')));
    expect(e.desc).toBe('SEV is not enabled');
    await vm.stop();
  });
});

describe.skipIf(!process.env.SEVKIT_SIM_SOCKET)('query-sev-attestation-report through the simulator daemon and the CLI', () => {
  let sim: SimEnv;
  let root: string;
  let out: string;

  beforeAll(async () => {
    sim = await makeSimEnv({ realQemu: 'none' });
    root = tmpRunRoot('simattestd');
    out = tmpRunRoot('simattestout');
  });

  afterAll(() => {
    expect(processesMentioning(root)).toEqual([]);
    expect(filesUnder(root)).toEqual([]);
    fs.rmSync(root, { recursive: true, force: true });
    fs.rmSync(out, { recursive: true, force: true });
    sim?.cleanup();
  });

  it('sevkit qmp … query-sev-attestation-report → base64-decoded file → sevkit validate CHAIN REPORT (0; 1 for a flipped byte)', async () => {
    expect(sim.daemon).toBe(true);
    const sup = new Supervisor({ qemu: sim.qemu, env: sim.env, runRoot: root, launchTimeoutMs: 30_000 });
    const vm = await sup.launch(sevSpec(sim, `attd-${run}`, 0x1));
    const chainFile = path.join(out, 'chain.cert');
    const exp = await runCli(['export', chainFile], { env: sim.env });
    expect(exp).toMatchObject({ code: 0, stderr: '' });
    const chain = decodeSevChain(fs.readFileSync(chainFile));

    const mnonce = crypto.randomBytes(16);
    const q = await runCli(['qmp', vm.qmpSocketPath!, 'query-sev-attestation-report', JSON.stringify({ mnonce: mnonce.toString('base64') })], { env: sim.env });
    expect(q.stderr).toBe('');
    expect(q.code).toBe(0);
    const raw = Buffer.from((JSON.parse(q.stdout) as { data: string }).data, 'base64');
    const reportFile = path.join(out, 'attestation_report.bin');
    fs.writeFileSync(reportFile, raw);

    const rep = decodeLegacyReport(raw);
    expect(rep.mnonce.equals(mnonce)).toBe(true);
    expect(rep.launchDigest.equals(computeLaunchDigest({ firmware: fs.readFileSync(AMDSEV) }))).toBe(true);
    expect(verifyLegacyReport(chain.pek, raw)).toBe(true);

    const v = await runCli(['validate', chainFile, reportFile], { env: sim.env });
    expect(v).toMatchObject({ code: 0, stderr: '' });
    const vj = await runCli(['validate', '--json', chainFile, reportFile], { env: sim.env });
    expect(JSON.parse(vj.stdout)).toMatchObject({
      valid: true,
      mnonce: mnonce.toString('hex'),
      launchDigest: rep.launchDigest.toString('hex'),
      policy: '0x00000001',
    });

    const flipped = Buffer.from(raw);
    flipped[0x05] ^= 0x01;
    const badFile = path.join(out, 'flipped.bin');
    fs.writeFileSync(badFile, flipped);
    const bad = await runCli(['validate', chainFile, badFile], { env: sim.env });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe(`sevkit: ${badFile}: attestation report signature does not verify with the PEK from ${chainFile}\n`);

    const badNonce = await runCli(['qmp', vm.qmpSocketPath!, 'query-sev-attestation-report', '{"mnonce":"AAAAAAAA"}'], { env: sim.env });
    expect(badNonce.code).toBe(1);
    expect(badNonce.stderr).toBe('sevkit: QMP query-sev-attestation-report failed: GenericError: SEV: mnonce must be 16 bytes (got 6)\n');
    await vm.stop();
  });
});
