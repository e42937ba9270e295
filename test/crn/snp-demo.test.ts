/** `sevkit demo --snp` end to end: attested unlock, the refused host naming the differing field, nothing left behind. */
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { runCli } from '../helpers/cli.js';
import { processesMentioning } from '../vm/helpers.js';

const simReason = process.env.SEVKIT_SIM_UNAVAILABLE;

describe.skipIf(Boolean(simReason))('sevkit demo --snp', { timeout: 200_000 }, () => {
  it('launches an SNP instance, attests through the forwarded port, unlocks; refuses other firmware with nothing sent; cleans up', async () => {
    const r = await runCli(['demo', '--snp'], { timeoutMs: 190_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const out = r.stdout;
    expect(out).toMatch(/SIMULATED/);
    expect(out).toMatch(/\[crn\] SNP VM [0-9a-f]{16}… running in \d+ ms, no pre-launch step; agent forwarded on 127\.0\.0\.1:\d+/);
    expect(out).toMatch(/"tee":"sev_snp","mapped_ports":\{"8443":\{"host":\d+,"tcp":true,"udp":false\}\}/);
    // The agent is a real `sevkit guest agent` process per VM (what `crn serve --snp-agent sim` runs), its events relayed.
    expect(out).toMatch(/\[guest [0-9a-f]{8}\] agent: listening on 127\.0\.0\.1:\d+, TLS key sha384 [0-9a-f]{16}…, owner 0x[0-9a-fA-F]{40}/);
    expect(out).toMatch(/\[guest [0-9a-f]{8}\] agent: 200 wrote disk_password \(signed by 0x[0-9a-fA-F]{40}\)/);
    expect(out).toMatch(/legacy measurement endpoint: HTTP 409: SNP: attest the guest directly/);
    expect(out).toMatch(/attested in the TLS handshake .* agent wrote \["disk_password"\]/);
    expect(out).toMatch(/disk_password: 24 bytes, mode 600 → matches what the owner sent/);
    // The refused case names the field that differs, and the guest got nothing.
    expect(out).toMatch(/REFUSED: .*NOT trusted, nothing was sent \(measurement: MEASUREMENT [0-9a-f]{96} is not the expected one\)/);
    expect(out).toMatch(/inject requests: 0 \(before 0\), secrets written: 0/);
    expect(out).toMatch(/demo --snp: OK/);
    const m = /\[sim\] simulator started in \d+ ms \(state (.+)\/sim\)/.exec(out);
    expect(m).not.toBeNull();
    expect(fs.existsSync(m![1]!)).toBe(false);
    expect(processesMentioning(m![1]!)).toEqual([]);
  });
});
