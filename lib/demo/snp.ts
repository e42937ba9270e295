/**
 * `sevkit demo --snp`: the SEV-SNP lifecycle on the SIMULATED platform, inside `sevkit sim` with the
 * QEMU wrapper playing 9.2. The reference CRN launches an SNP instance at allocation (no pre-launch
 * step) and forwards a host port to its guest agent; the agent is the real `sevkit guest agent`, one
 * process per VM in its simulated guest (agentProcessLocator, what `crn serve --snp-agent sim` runs),
 * its reports from the simulated /dev/sev-guest carrying the launch the wrapper measured for that VM;
 * the owner attests through the forwarded port, inside the TLS handshake, and only then sends its
 * signed secret, which the agent writes. Then a host that boots other firmware: refused, nothing sent.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { DemoError } from './errors.js';
import type { SnpProduct } from '../snp/product.js';
import type { ProductRoots } from '../snp/roots.js';

/** The inner half of `sevkit demo --snp` (already under `sevkit sim`), booting `firmware` (demo.ts makes it). Resolves the exit code; throws DemoError for a step that went wrong. */
export async function insideSnp(o: {
  env: NodeJS.ProcessEnv;
  dir: string;
  out: (line: string) => void;
  firmware: { path: string; source: string };
}): Promise<number> {
  const { out, dir } = o;
  const stateDir = o.env.SEVKIT_SIM_STATE;
  if (!o.env.SEVKIT_SIM_SOCKET || !stateDir) throw new DemoError('sevkit demo --snp --inside-sim must run under `sevkit sim`');
  const { startCrnServer } = await import('../crn/server.js');
  const { SupervisorLauncher, platformCertificateSource } = await import('../crn/launchers.js');
  const { agentProcessLocator, AGENT_SECRETS_DIR } = await import('../crn/agent-process.js');
  const { CrnClient } = await import('../owner/client.js');
  const { attestAndInject, AttestRefusedError } = await import('../owner/attest.js');
  const { EthWallet } = await import('../aleph/wallet.js');
  const { Supervisor } = await import('../vm/index.js');
  const { loadSnpFirmware } = await import('../snp/digest.js');
  const { KdsClient } = await import('../snp/kds.js');
  const { simulatorCaChain } = await import('../sim/ca-chain.js');
  const { SimPlatform } = await import('../sim/platform.js');
  const { SimSnpGuest } = await import('../sim/snp/guest.js');
  const { SimKdsServer } = await import('../sim/snp/kds-server.js');

  const fw = o.firmware;
  out(`[host] firmware ${fw.source} → ${fw.path}; QEMU played as ${o.env.SEVKIT_SIM_QEMU_VERSION ?? '?'} (sev-snp-guest), VM-less`);
  const owner = EthWallet.generate();
  // What each VM's agent process said: its events, and how many inject requests reached it.
  const injectRequests = new Map<string, number>();
  const snpAgent = agentProcessLocator({
    command: [process.execPath, ...process.execArgv, process.argv[1]!],
    env: o.env,
    onLine: (ref, line) => {
      const m = /^sevkit guest agent: (.*)$/.exec(line);
      if (!m) return;
      if (/\/confidential\/inject-secret| wrote /.test(m[1]!)) injectRequests.set(ref, (injectRequests.get(ref) ?? 0) + 1);
      out(`[guest ${ref.slice(0, 8)}] agent: ${m[1]}`);
    },
  });

  const token = crypto.randomBytes(24).toString('hex');
  const supervisor = new Supervisor({
    runRoot: path.join(dir, 'vms'),
    launchTimeoutMs: 60_000,
    stopTimeoutMs: 5_000,
    env: { ...o.env, SEVKIT_REAL_QEMU: 'none' },
    ...(o.env.SEVKIT_QEMU ? { qemu: o.env.SEVKIT_QEMU } : {}),
  });
  const log: string[] = [];
  const srv = await startCrnServer({
    host: '127.0.0.1',
    port: 0,
    domain: '127.0.0.1',
    certs: await platformCertificateSource({ testCa: simulatorCaChain(stateDir) }),
    launcher: new SupervisorLauncher(supervisor, { kind: 'vm-less (simulator wrapper)', snpAgent }),
    runDir: path.join(dir, 'crn'),
    allocationToken: token,
    platformKind: 'simulated',
    log: (l) => log.push(l),
  });
  // The simulator's TEST roots and its KDS stand-in (a real owner uses AMD's roots and KDS).
  const simGuest = new SimSnpGuest(SimPlatform.open(stateDir));
  const kds = await SimKdsServer.start(simGuest);
  const roots = (p: SnpProduct): ProductRoots => simGuest.testRoots(p);
  // Each VM's simulated guest keeps its secrets in the VM's run dir (gone with the VM).
  const guestSecrets = (ref: string): string => {
    const runDir = supervisor.get(ref)?.runDir;
    if (!runDir) throw new DemoError(`VM ${ref.slice(0, 16)}… has no run dir`);
    return path.join(runDir, AGENT_SECRETS_DIR);
  };
  let code = 1;
  try {
    out(`[crn] reference CRN on ${srv.url}; owner ${owner.address}`);
    const image = fs.readFileSync(fw.path);
    const expected = { firmware: loadSnpFirmware(image, "the owner's firmware", { allowNoMetadata: true }), vcpus: 2 };
    const client = new CrnClient({ url: srv.url });

    const launch = async (firmware: string): Promise<{ ref: string; port: number }> => {
      const ref = crypto.randomBytes(32).toString('hex');
      const t = performance.now();
      await client.allocate(token, { ref, owner: owner.address, firmware, policy: 0x30000, vcpus: 2, memory_mb: 256, tee: 'sev_snp' });
      const end = Date.now() + 60_000;
      while (srv.service.state(ref) === 'starting' && Date.now() < end) await new Promise((r) => setTimeout(r, 25));
      const vm = srv.service.list().find((v) => v.ref === ref);
      if (vm?.state !== 'running' || !vm.port) throw new DemoError(`the SNP VM did not start: ${vm?.state ?? 'gone'} ${vm?.reason ?? ''}`);
      out(`[crn] SNP VM ${ref.slice(0, 16)}… running in ${(performance.now() - t).toFixed(0)} ms, no pre-launch step; agent forwarded on 127.0.0.1:${vm.port}`);
      const list = (await (await fetch(`${srv.url}/about/executions/list`)).json()) as Record<string, unknown>;
      out(`[crn] /about/executions/list: ${JSON.stringify(list[ref])}`);
      return { ref, port: vm.port };
    };

    const a = await launch(fw.path);
    const legacy = await new CrnClient({ url: srv.url, wallet: owner }).measurementOnce(a.ref);
    out(`[owner] legacy measurement endpoint: HTTP ${legacy.status}: ${legacy.detail.slice(0, 90)}…`);
    const password = crypto.randomBytes(18).toString('base64url');
    const t = performance.now();
    const res = await attestAndInject({
      url: `https://127.0.0.1:${a.port}`,
      expected,
      wallet: owner,
      secrets: { disk_password: password },
      kds: new KdsClient({ baseUrl: kds.url, cacheDir: path.join(dir, 'kds-cache') }),
      roots,
    });
    out(
      `[owner] attested in the TLS handshake (${res.verdict.checks.filter((c) => c.outcome === 'pass').length} checks passed) and sent the signed secret in ${(performance.now() - t).toFixed(0)} ms; agent wrote ${JSON.stringify(res.injected)}`,
    );
    const secretFile = path.join(guestSecrets(a.ref), 'disk_password');
    const written = fs.readFileSync(secretFile);
    const same = written.length === Buffer.byteLength(password) && crypto.timingSafeEqual(written, Buffer.from(password));
    out(
      `[guest] disk_password: ${written.length} bytes, mode ${(fs.statSync(secretFile).mode & 0o777).toString(8)} → ${same ? 'matches what the owner sent' : 'DOES NOT MATCH'}`,
    );
    written.fill(0);
    if (!same) throw new DemoError("the guest did not receive the owner's secret");

    // The same owner, on a host that boots a firmware one bit different from the owner's.
    const tampered = path.join(dir, 'host-OVMF.fd');
    const img = Buffer.from(image);
    img[0x1000] = (img[0x1000]! ^ 0x01) & 0xff;
    fs.writeFileSync(tampered, img);
    const b = await launch(tampered);
    out("[owner] second VM: the host boots a firmware one bit different from the owner's");
    const before = injectRequests.get(b.ref) ?? 0;
    try {
      await attestAndInject({
        url: `https://127.0.0.1:${b.port}`,
        expected,
        wallet: owner,
        secrets: { disk_password: password },
        kds: new KdsClient({ baseUrl: kds.url, cacheDir: path.join(dir, 'kds-cache') }),
        roots,
      });
      throw new DemoError('the launch on other firmware was not refused');
    } catch (e) {
      if (!(e instanceof AttestRefusedError)) throw e;
      out(`[owner] REFUSED: ${e.message}`);
      const after = injectRequests.get(b.ref) ?? 0;
      const files = fs.readdirSync(guestSecrets(b.ref));
      out(`[guest ${b.ref.slice(0, 8)}] inject requests: ${after} (before ${before}), secrets written: ${files.length}`);
      if (after !== before || files.length) throw new DemoError('a secret reached the guest after a refused check');
    }
    code = 0;
  } finally {
    const t2 = performance.now();
    await srv.close();
    await supervisor.close();
    await kds.close();
    out(`[teardown] CRN, SNP VMs, forwarders, guest agent processes and KDS stand-in closed in ${(performance.now() - t2).toFixed(0)} ms`);
  }
  out(code === 0 ? 'demo --snp: OK (SIMULATED platform)' : 'demo --snp: FAILED');
  return code;
}
