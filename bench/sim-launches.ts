/**
 * VM-less guest launches per second on the simulator (goal >= 50/s), the daemon in
 * its own process, measured side by side in one run:
 *
 *   by path     LAUNCH_START, UPDATE of the firmware by its path (the daemon hashes each
 *               file version once), MEASURE, SECRET, FINISH, DECOMMISSION: what
 *               SimVmLauncher and the QEMU wrapper now send
 *   by bytes    the same, with the firmware sent as base64 inside the JSON request
 *               (what the wrapper sent before)
 *   wrapper     the supervisor launching the simulator's QEMU wrapper (one Node
 *               process per VM) to awaiting-secret, then stopping it: a few only
 *
 * The owner's sessions and secrets are prepared outside the timing; --concurrency
 * launches are in flight at once.
 *
 *   node --import tsx bench/sim-launches.ts [--n 300] [--concurrency 16] [--wrapper 4]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};

if (arg('role', '') === 'sim') {
  const { SimDaemon } = await import('../lib/sim/daemon.js');
  const d = await SimDaemon.start(arg('state', ''), { seed: 5 });
  process.stdout.write(`${d.socketPath}\n`);
  process.on('SIGTERM', () => void d.close().then(() => process.exit(0)));
} else {
  await main();
}

async function main(): Promise<void> {
  const { SimClient } = await import('../lib/sim/client.js');
  const { createSession, buildSecret, DISK_PASSWORD_GUID } = await import('../lib/launch/index.js');
  const { makeDemoFirmware } = await import('../lib/demo/demo.js');
  const N = Number(arg('n', '300'));
  const CONC = Number(arg('concurrency', '16'));
  const WRAPPER = Number(arg('wrapper', '4'));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-bench-simlaunch-'));
  const simProc = spawn(process.execPath, [...process.execArgv, process.argv[1]!, '--role', 'sim', '--state', path.join(tmp, 'sim')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const socket = await new Promise<string>((resolve, reject) => {
    let out = '';
    simProc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.trim());
    });
    simProc.once('exit', (c) => reject(new Error(`simulator exited ${c}`)));
  });
  const fwPath = makeDemoFirmware(tmp).path;
  const firmware = fs.readFileSync(fwPath);
  try {
    const c = await SimClient.connect(socket);
    const { pdh } = await c.pdhCertExport();
    const api = await c.api();
    const sessions = Array.from({ length: N }, () => createSession(pdh, 1));

    const one = async (i: number, byPath: boolean): Promise<void> => {
      const s = sessions[i]!;
      const h = await c.launchStart({ policy: 1, godh: s.godh, session: s.session });
      if (byPath) await c.launchUpdateFile(h, fwPath);
      else await c.launchUpdateData(h, firmware);
      const m = await c.launchMeasure(h);
      const pkt = buildSecret({ tek: s.tek, tik: s.tik, measurement: m, entries: [{ guid: DISK_PASSWORD_GUID, data: Buffer.from('pw') }], layout: 'aleph' });
      await c.launchSecret(h, pkt.header, pkt.payload, 0);
      await c.launchFinish(h);
      await c.decommission(h);
    };
    const run = async (byPath: boolean, n: number): Promise<number> => {
      let next = 0;
      const t = performance.now();
      await Promise.all(
        Array.from({ length: Math.min(CONC, n) }, async () => {
          while (next < n) await one(next++, byPath);
        }),
      );
      return (n * 1000) / (performance.now() - t);
    };
    await run(true, Math.min(10, N));
    await run(false, Math.min(10, N));
    // Interleave halves so load from other processes hits both alike.
    const half = Math.floor(N / 2);
    const rate = { path: [] as number[], bytes: [] as number[] };
    for (const byPath of [true, false, true, false]) rate[byPath ? 'path' : 'bytes'].push(await run(byPath, half));
    const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    c.close();

    let wrapperRate: number | undefined;
    if (WRAPPER > 0) {
      const { prepareSimHost, simEnv, findShim } = await import('../lib/sim/env.js');
      const { Supervisor } = await import('../lib/vm/index.js');
      const host = prepareSimHost(path.join(tmp, 'sim'));
      const env = { ...simEnv({ socketPath: socket, stateDir: path.join(tmp, 'sim'), shim: findShim(), host }), SEVKIT_REAL_QEMU: 'none' };
      const sup = new Supervisor({ qemu: host.qemu, env, runRoot: path.join(tmp, 'vms'), hostAddressBits: { cbitpos: 51, reducedPhysBits: 1 } });
      const t = performance.now();
      await Promise.all(
        Array.from({ length: WRAPPER }, async (_x, i) => {
          const s = sessions[i]!;
          const vm = await sup.launch({ name: `w${i}`, firmware: fwPath, memMb: 64, sev: { policy: 1, godh: s.godhB64, session: s.sessionB64 } });
          await vm.stop({ timeoutMs: 10_000 });
        }),
      );
      wrapperRate = (WRAPPER * 1000) / (performance.now() - t);
    }
    console.log(
      `simulator VM-less launches (SIMULATED; daemon in its own process; node ${process.version}, ${os.cpus().length} CPUs, load ${os.loadavg()[0]!.toFixed(1)})`,
    );
    console.log(
      `  firmware ${(firmware.length / 1024).toFixed(0)} KiB, API ${api.major}.${api.minor}, ${CONC} launches in flight, ${2 * half} timed launches per way`,
    );
    console.log(`  firmware by path (launchUpdateFile)       ${avg(rate.path).toFixed(1).padStart(7)} launches/s`);
    console.log(
      `  firmware as base64 JSON (launchUpdateData) ${avg(rate.bytes).toFixed(1).padStart(6)} launches/s   (by path: ${(avg(rate.path) / avg(rate.bytes)).toFixed(2)}x)`,
    );
    if (wrapperRate !== undefined)
      console.log(
        `  QEMU wrapper per VM (Supervisor, ${WRAPPER} at once) ${wrapperRate.toFixed(1).padStart(6)} launches/s   (by path: ${(avg(rate.path) / wrapperRate).toFixed(1)}x)`,
      );
    console.log(`goal >= 50 VM-less launches/s: ${avg(rate.path).toFixed(1)}/s → ${avg(rate.path) >= 50 ? 'met' : 'NOT met'}`);
  } finally {
    simProc.kill('SIGTERM');
    await new Promise((r) => simProc.once('exit', r));
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
