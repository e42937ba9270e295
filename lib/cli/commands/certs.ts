/**
 * Certificate commands, drop-in for sevctl 0.6.2: verify, generate, provision,
 * validate. Thin over lib/certs; the library is imported lazily.
 */
import type { Command } from 'commander';
import { sevkitEnv } from '../env.js';
import { action, printJson, readInputFile, useColor, warnIfTestRoot, writeOutputFile, EXIT_FAIL } from '../run.js';

/** The platform (lib/platform, owned by the native area), loaded only when a command needs it. */
async function openPlatform(device?: string) {
  const { SevPlatform } = await import('../../platform/index.js');
  const d = device ?? sevkitEnv().device;
  return new SevPlatform(d !== undefined ? { device: d } : {});
}

interface VerifyOpts {
  device?: string;
  sev?: string;
  oca?: string;
  ca?: string;
  generation?: string;
  quiet?: boolean;
  json?: boolean;
  offline?: boolean;
}

async function verifyCmd(o: VerifyOpts): Promise<number> {
  const certs = await import('../../certs/index.js');
  if (o.ca && o.generation) throw new (await import('../../errors.js')).UsageError('give either --ca or --generation, not both');
  const ca = o.ca ? certs.decodeCaChain(await readInputFile(o.ca, 'CA chain (ASK‖ARK)'), o.ca) : undefined;
  let sev;
  let source: string;
  if (o.sev) {
    sev = certs.decodeSevChain(await readInputFile(o.sev, 'SEV chain'), o.sev);
    source = o.sev;
  } else {
    // The platform's CEK is replaced by AMD KDS's unless it already carries an ASK
    // signature; which roots are trusted is decided below, by --ca or the built-ins only.
    const platform = await openPlatform(o.device);
    const env = sevkitEnv();
    const testCa = (await import('../../sim/ca-chain.js')).simulatorCaChain(env.simState);
    sev = (
      await certs.platformSevChain(platform, {
        ...(ca ? { ca } : {}),
        ...(testCa ? { testCa } : {}),
        kds: { offline: Boolean(o.offline), cacheDir: env.kdsCacheDir },
      })
    ).sev;
    source = 'the platform';
  }
  const oca = o.oca
    ? certs.decodeSevCert(await readInputFile(o.oca, 'OCA certificate'), { name: o.oca, usage: certs.Usage.OCA, allowTrailing: true })
    : undefined;
  const generation = o.generation ? certs.parseGeneration(o.generation) : undefined;
  const r = certs.verifyTrustedChain({ chain: sev, ca, generation, ...(oca ? { oca } : {}) });
  if (!o.quiet) warnIfTestRoot(r.anchor?.testRoot ?? false, `--ca ${o.ca}`);
  if (r.caSource === 'none') {
    throw new certs.CertificateError(
      'ERR_CERT_GENERATION',
      `could not find a matching built-in AMD certificate: no AMD ASK (naples, rome, milan, genoa, turin) signs the CEK of ${source}; pass --ca ASK_ARK_FILE`,
      { cert: 'CEK' },
    );
  }
  if (o.json) printJson(certs.verificationJson(r));
  else if (!o.quiet) process.stdout.write(certs.renderVerify(r, useColor()));
  if (!r.ok) {
    if (!o.quiet && !o.json) {
      const why = r.failed.map((l) => `${l.signer}${l.signer === l.subject ? ' self-signature' : `→${l.subject}`}: ${l.reason}`).join('; ');
      process.stderr.write(`sevkit: SEV/CA certificate verification failed (${why})\n`);
    }
    return EXIT_FAIL;
  }
  return 0;
}

async function generateCmd(certPath: string, keyPath: string, o: { json?: boolean }): Promise<void> {
  const crypto = await import('node:crypto');
  const certs = await import('../../certs/index.js');
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const unsigned = certs.createSevCert({ usage: certs.Usage.OCA, algo: certs.Algo.ECDSA_SHA256, publicKey, apiMajor: 0, apiMinor: 0 });
  const oca = certs.signSevCert(unsigned, 1, { signerUsage: certs.Usage.OCA, signerAlgo: certs.Algo.ECDSA_SHA256, privateKey });
  const keyDer = certs.encodeOcaKey(privateKey);
  try {
    await writeOutputFile(keyPath, keyDer, { mode: 0o600 });
    await writeOutputFile(certPath, certs.encodeSevCert(oca));
  } finally {
    keyDer.fill(0);
  }
  if (o.json) printJson({ cert: certPath, key: keyPath, oca: certs.sevCertDisplay(oca) });
}

async function provisionCmd(certPath: string, keyPath: string, o: { json?: boolean; device?: string }): Promise<void> {
  const certs = await import('../../certs/index.js');
  const oca = certs.decodeSevCert(await readInputFile(certPath, 'OCA certificate'), { name: certPath, usage: certs.Usage.OCA, allowTrailing: true });
  const self = certs.verifySevLink(oca, oca);
  if (!self.ok)
    throw new certs.CertificateError('ERR_CERT_SIGNATURE', `${certPath}: OCA is not validly self-signed (${self.reason})`, { cert: certPath, field: 'sig' });
  const keyBuf = await readInputFile(keyPath, 'OCA private key');
  let key;
  try {
    key = certs.decodePrivateKeyFor(keyBuf, oca, keyPath);
  } finally {
    keyBuf.fill(0);
  }
  const platform = await openPlatform(o.device);
  const csr = certs.decodeSevCert(await platform.pekCsr(), { name: 'PEK CSR from the firmware', usage: certs.Usage.PEK });
  const algo = oca.algo === certs.Algo.ECDSA_SHA384 ? certs.Algo.ECDSA_SHA384 : certs.Algo.ECDSA_SHA256;
  const pek = certs.signSevCert(csr, 'first-empty', { signerUsage: certs.Usage.OCA, signerAlgo: algo, privateKey: key });
  await platform.pekCertImport(certs.encodeSevCert(pek), certs.encodeSevCert(oca));
  if (o.json) printJson({ provisioned: true, oca: certs.sevCertDisplay(oca), pek: certs.sevCertDisplay(pek) });
}

async function validateCmd(chainPath: string, reportPath: string, o: { json?: boolean }): Promise<number> {
  const fs = await import('node:fs');
  const path = await import('node:path');
  const certs = await import('../../certs/index.js');
  const isDir = (p: string) => {
    try {
      return fs.statSync(p).isDirectory();
    } catch {
      return false;
    }
  };
  // sevctl accepts directories holding pek.cert / attestation_report.bin.
  const pekFile = isDir(chainPath) ? path.join(chainPath, 'pek.cert') : chainPath;
  const repFile = isDir(reportPath) ? path.join(reportPath, 'attestation_report.bin') : reportPath;
  const chainBuf = await readInputFile(pekFile, 'PEK certificate or SEV chain');
  const pek =
    chainBuf.length >= certs.SEV_CHAIN_SIZE
      ? certs.decodeSevChain(chainBuf, pekFile).pek
      : certs.decodeSevCert(chainBuf, { name: pekFile, usage: certs.Usage.PEK });
  const repBuf = await readInputFile(repFile, 'attestation report');
  const report = certs.decodeLegacyReport(repBuf, repFile);
  const ok = certs.verifyLegacyReport(pek, repBuf);
  if (o.json) {
    printJson({
      valid: ok,
      pek: certs.sevCertDisplay(pek),
      mnonce: report.mnonce.toString('hex'),
      launchDigest: report.launchDigest.toString('hex'),
      policy: `0x${report.policy.toString(16).padStart(8, '0')}`,
    });
  }
  if (!ok) {
    process.stderr.write(`sevkit: ${repFile}: attestation report signature does not verify with the PEK from ${pekFile}\n`);
    return EXIT_FAIL;
  }
  return 0;
}

/** Registers the `certs` commands on the sevkit program. */
export function register(program: Command): void {
  program
    .command('verify')
    .description('Verify the certificate chain (PDH←PEK←OCA/CEK←ASK←ARK), as sevctl verify does')
    .option('--sev <file>', 'SEV chain file PDH‖PEK‖OCA‖CEK (default: export it from the platform)')
    .option('--oca <file>', "replace the chain's OCA with this certificate")
    .option('--ca <file>', "CA chain file ASK‖ARK (default: AMD's built-in roots for the CEK's generation)")
    .option('--generation <name>', 'use the built-in roots of this generation (naples, rome, milan, genoa, turin)')
    .option('--offline', 'never contact AMD KDS (use the CEK cache only)')
    .option('-q, --quiet', 'print nothing; only the exit code tells')
    .option('--device <path>', 'SEV device when reading the chain from the platform (default: $SEVKIT_DEVICE, else /dev/sev)')
    .option('--json', 'print the result as JSON')
    // sevctl takes -q before the subcommand; honour a program-level --quiet too.
    .action(action((o: VerifyOpts, cmd: Command) => verifyCmd({ ...o, quiet: Boolean(o.quiet ?? (cmd.optsWithGlobals() as { quiet?: boolean }).quiet) })));

  program
    .command('generate')
    .description('Generate a new self-signed OCA certificate (CERT, 0x824 bytes) and its P-384 private key (KEY, SEC1 DER, mode 0600)')
    .argument('<cert>', 'output certificate file')
    .argument('<key>', 'output private key file')
    .option('--json', 'print what was written as JSON')
    .action(action((cert: string, key: string, o: { json?: boolean }) => generateCmd(cert, key, o)));

  program
    .command('provision')
    .description('Take ownership: sign the platform PEK with the OCA (PEK_CSR → sign → PEK_CERT_IMPORT)')
    .argument('<cert>', 'OCA certificate file')
    .argument('<key>', 'OCA private key file (DER or PEM)')
    .option('--json', 'print the resulting certificates as JSON')
    .option('--device <path>', 'SEV device (default: $SEVKIT_DEVICE, else /dev/sev)')
    .action(action((cert: string, key: string, o: { json?: boolean; device?: string }) => provisionCmd(cert, key, o)));

  program
    .command('validate')
    .description('Check that the PEK signed a 208-byte legacy attestation report')
    .argument('<chain>', 'PEK certificate, SEV chain file, or a directory holding pek.cert')
    .argument('<report>', 'attestation report file, or a directory holding attestation_report.bin')
    .option('--json', 'print the report fields and the result as JSON')
    .action(action((chain: string, report: string, o: { json?: boolean }) => validateCmd(chain, report, o)));
}
