/**
 * The owner's attest-and-inject against the guest agent (both in this process, the
 * agent's reports from the simulated SNP guest, the VCEK from the KDS stand-in once,
 * then from the client's cache), next to its primitives measured in the same run:
 * one TLS 1.3 handshake with the agent, and one ECDSA P-384 verify of a report
 * signature with a prepared VCEK key. The firmware is loaded once (its page hashes
 * memoised), as an owner that attests many guests of one image would.
 *
 *   node --import tsx bench/snp-attest.ts [--seconds S]
 */
import crypto from 'node:crypto';
import path from 'node:path';
import tls from 'node:tls';
import { GuestAgent } from '../lib/guest-agent/agent.js';
import { EthWallet } from '../lib/aleph/wallet.js';
import { attestAndInject } from '../lib/owner/attest.js';
import { loadSnpFirmware } from '../lib/snp/digest.js';
import { parseReport, signatureP1363, signedRegion } from '../lib/snp/report.js';
import { parseAmdCert } from '../lib/snp/x509.js';
import { AMDSEV, digestOf, startSimSnpSide } from '../test/snp/agent-helpers.js';

const secondsArg = process.argv.indexOf('--seconds');
const SECONDS = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : 2;

async function rate(name: string, fn: () => Promise<unknown> | unknown): Promise<number> {
  await fn(); // warm
  let n = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(SECONDS * 1e9));
  while (process.hrtime.bigint() < end) {
    await fn();
    n++;
  }
  const ms = Number(process.hrtime.bigint() - start) / 1e6 / n;
  console.log(`${name.padEnd(44)} ${ms.toFixed(3).padStart(9)} ms/op  (${n} ops)`);
  return ms;
}

const side = await startSimSnpSide();
side.configure({ measurement: digestOf().toString('hex') });
const owner = EthWallet.generate();
const agent = await GuestAgent.start({
  owner: owner.address,
  secretsDir: path.join(side.dir, 'secrets'),
  host: '127.0.0.1',
  port: 0,
  reportSource: side.source,
});
const port = agent.address().port;
const firmware = loadSnpFirmware(AMDSEV, 'AmdSev');
const kds = side.kdsClient();
try {
  const full = await rate('attest-and-inject (verify + envelope + POST)', () =>
    attestAndInject({
      url: `https://127.0.0.1:${port}`,
      expected: { firmware, vcpus: 2, vcpuType: 'EPYC-v4' },
      kds,
      roots: side.roots,
      wallet: owner,
      secrets: { k: 'v' },
    }),
  );
  const hs = await rate(
    'one TLS 1.3 handshake with the agent',
    () =>
      new Promise<void>((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
        s.once('secureConnect', () => {
          s.destroy();
          resolve();
        });
        s.once('error', reject);
      }),
  );
  const r = parseReport(agent.report);
  const vcek = parseAmdCert(side.guest.chain('Genoa').vcek, 'VCEK');
  const sig = signatureP1363(r);
  const region = signedRegion(agent.report);
  const p384 = await rate('one ECDSA P-384 verify (report signature)', () => {
    if (!crypto.verify('sha384', region, { key: vcek.publicKey, dsaEncoding: 'ieee-p1363' }, sig)) throw new Error('signature');
  });
  console.log(
    `attest-and-inject = ${(full / hs).toFixed(2)} × handshake = ${(full / p384).toFixed(1)} × P-384 verify = ${(full / (hs + p384)).toFixed(2)} × (handshake + verify)`,
  );
} finally {
  await agent.close();
  await side.close();
}
