/**
 * Firmware failures at each launch step, armed in the simulator's faults.json
 * on a private state dir (so no other test's guests are hit), and how they
 * surface through the wrapper (as QEMU reports them) and the Supervisor.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { armFault, clearFaults } from '../../lib/sim/faults.js';
import { Supervisor, VmExitedError } from '../../lib/vm/index.js';
import { QmpCommandError } from '../../lib/qmp/index.js';
import { buildSecret, createSession } from '../../lib/launch/index.js';
import { VECTORS } from '../helpers/cli.js';
import { filesUnder, processesMentioning, tmpRunRoot } from './helpers.js';
import { makeSimEnv, type SimEnv } from './simenv.js';

const AMDSEV = path.join(VECTORS, 'sev-snp-measure/ovmf_AmdSev_suffix.bin');
let sim: SimEnv;
let root: string;
let pdh: Buffer;

beforeAll(async () => {
  sim = await makeSimEnv({ realQemu: 'none', private: true });
  root = tmpRunRoot('simfault');
  pdh = fs.readFileSync(path.join(sim.stateDir, 'pdh.cert'));
});
afterAll(() => {
  expect(processesMentioning(root)).toEqual([]);
  expect(filesUnder(root)).toEqual([]);
  fs.rmSync(root, { recursive: true, force: true });
  sim?.cleanup();
});

function launch(name: string) {
  const s = createSession(pdh, 0x1);
  const sup = new Supervisor({ qemu: sim.qemu, env: sim.env, runRoot: root });
  return { s, p: sup.launch({ name, firmware: AMDSEV, sev: { policy: 1, godh: s.godhB64, session: s.sessionB64 } }) };
}

describe('firmware faults at each launch step', () => {
  it('LAUNCH_START refused: QEMU fails to start', async () => {
    clearFaults(sim.stateDir);
    armFault(sim.stateDir, { on: 'launch', cmd: 'LAUNCH_START', fwStatus: 'INVALID_PLATFORM_STATE' });
    const err = await launch('f-start').p.catch((e) => e);
    expect(err).toBeInstanceOf(VmExitedError);
    expect(err.message).toContain("sev_launch_start: LAUNCH_START ret=1 fw_error=1 'Platform state is invalid'");
  });

  it('LAUNCH_UPDATE_DATA refused: QEMU cannot encrypt the flash and exits', async () => {
    armFault(sim.stateDir, { on: 'launch', cmd: 'LAUNCH_UPDATE_DATA', fwStatus: 'INVALID_ADDRESS' });
    const err = await launch('f-update').p.catch((e) => e);
    expect(err).toBeInstanceOf(VmExitedError);
    expect(err.message).toContain("LAUNCH_UPDATE ret=1 fw_error=9 'Invalid address' | qemu-system-x86_64: failed to encrypt pflash rom");
  });

  it('LAUNCH_MEASURE refused: QEMU stays up without a measurement; the launch fails and QEMU is stopped', async () => {
    armFault(sim.stateDir, { on: 'launch', cmd: 'LAUNCH_MEASURE', fwStatus: 'INVALID_GUEST_STATE' });
    const err = await launch('f-measure').p.catch((e) => e);
    expect(err).toBeInstanceOf(QmpCommandError);
    expect(err.desc).toBe('SEV launch measurement is not available');
  });

  it('LAUNCH_SECRET refused: QMP error, the VM keeps waiting; LAUNCH_FINISH refused: QEMU exits', async () => {
    const { s, p } = launch('f-secret');
    const vm = await p;
    const m = await vm.measurement();
    const b = buildSecret({ tek: s.tek, tik: s.tik, measurement: Buffer.from(m.launchMeasure, 'base64'), plaintext: Buffer.from('fault-secret-123') });
    const args = { packetHeader: b.header.toString('base64'), secret: b.payload.toString('base64') };
    armFault(sim.stateDir, { on: 'launch', cmd: 'LAUNCH_SECRET', fwStatus: 'INVALID_ADDRESS' });
    const e1 = await vm.injectSecret(args).catch((e) => e);
    expect(e1).toBeInstanceOf(QmpCommandError);
    expect(e1.desc).toBe("SEV: failed to inject secret ret=1 fw_error=9 'Invalid address'");
    expect(vm.state).toBe('awaiting-secret');
    armFault(sim.stateDir, { on: 'launch', cmd: 'LAUNCH_FINISH', fwStatus: 'INVALID_GUEST_STATE' });
    const e2 = await vm.injectSecret(args).catch((e) => e);
    expect(e2).toBeInstanceOf(VmExitedError);
    expect(e2.exitCode).toBe(1);
    expect(e2.message).toContain("sev_launch_finish: LAUNCH_FINISH ret=1 fw_error=2 'Guest state is invalid'");
    expect(await vm.waitEnded()).toBe('failed');
    // The secret was accepted (FINISH, not SECRET, failed), and it went with the decommissioned guest's memory.
    expect(fs.existsSync(path.join(sim.stateDir, 'guests', 'f-secret'))).toBe(false);
  });
});
