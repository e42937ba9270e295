/**
 * `sevkit snp …`: SEV-SNP. This file creates the `snp` group and its verifier-side
 * subcommands (verify, show, fetch); other SNP command files add theirs through one
 * register call each (snp-launch.ts: digest, diagnose, id-block). Thin over lib/snp,
 * imported lazily.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { action, EXIT_FAIL, EXIT_OK, parseIntArg, printJson, readInputFile, writeOutputFile } from '../run.js';
import { tcbArg } from './snp-options.js';
import { registerSnpLaunch } from './snp-launch.js';
import { registerGuest } from './snp-guest.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** Hex (optionally 0x-prefixed, ':' or whitespace allowed) → bytes; a usage error otherwise. */
function hexArg(v: string, what: string, len?: number, upTo = false): Buffer {
  const s = v.trim().replace(/^0x/i, '').replace(/[:\s]/g, '');
  if (!/^(?:[0-9a-f]{2})*$/i.test(s) || s.length === 0) throw new InvalidArgumentError(`${what} must be hex, got '${v.slice(0, 40)}'`);
  const b = Buffer.from(s, 'hex');
  if (len !== undefined && (upTo ? b.length > len : b.length !== len))
    throw new InvalidArgumentError(`${what} must be ${upTo ? 'at most ' : ''}${len} bytes (${len * 2} hex digits), got ${b.length}`);
  return b;
}

/** A report file: the raw 1184 bytes, or the same as hex text (as some tools store it). */
async function readReport(file: string): Promise<Buffer> {
  const b = await readInputFile(file, 'an attestation report');
  const text = b.toString('latin1').trim();
  if (b.length !== 1184 && /^[0-9a-f]+$/i.test(text) && text.length === 2368) return Buffer.from(text, 'hex');
  return b;
}

async function productArg(v: string | undefined) {
  if (v === undefined) return undefined;
  const { parseProduct } = await import('../../snp/product.js');
  const { UsageError } = await import('../../errors.js');
  const p = parseProduct(v);
  if (!p) throw new UsageError(`unknown product '${v}' (expected Milan, Genoa, Siena, Bergamo or Turin)`);
  return p;
}

function timeArg(v: string): Date {
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) throw new InvalidArgumentError(`--at must be an ISO 8601 time (e.g. 2025-06-01T00:00:00Z), got '${v}'`);
  return d;
}

function firmwareArg(v: string): { major: number; minor: number; build?: number } {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?$/.exec(v.trim());
  if (!m) throw new InvalidArgumentError(`--min-firmware must be MAJOR.MINOR[.BUILD], got '${v}'`);
  return { major: Number(m[1]), minor: Number(m[2]), ...(m[3] !== undefined ? { build: Number(m[3]) } : {}) };
}

function versionsArg(v: string): { min: number; max: number } {
  const m = /^(\d+)(?:\s*(?:-|\.\.)\s*(\d+))?$/.exec(v.trim());
  if (!m) throw new InvalidArgumentError(`--versions must be N or MIN-MAX, got '${v}'`);
  return { min: Number(m[1]), max: Number(m[2] ?? m[1]) };
}

interface VerifyOpts {
  report: string;
  vcek?: string;
  certs?: string;
  certTable?: string;
  kds?: boolean;
  kdsUrl?: string;
  offline?: boolean;
  cacheDir?: string;
  product?: string;
  at?: Date;
  crl?: string;
  fetchCrl?: boolean;
  requireCrl?: boolean;
  measurement: string[];
  allowDebug?: boolean;
  allowMigrateMa?: boolean;
  smt?: boolean;
  allowProvisional?: boolean;
  allowMaskedChipId?: boolean;
  minTcb?: ReturnType<typeof tcbArg>;
  minLaunchTcb?: ReturnType<typeof tcbArg>;
  minFirmware?: ReturnType<typeof firmwareArg>;
  versions?: ReturnType<typeof versionsArg>;
  vmpl?: number;
  reportData?: string;
  bind?: string;
  hostData?: string;
  idKeyDigest: string[];
  authorKeyDigest: string[];
  familyId?: string;
  imageId?: string;
  minGuestSvn?: number;
  chipId: string[];
  json?: boolean;
  quiet?: boolean;
}

/** The KDS cache the CLI uses: $SEVKIT_KDS_CACHE (or the XDG cache) + /snp, unless --cache-dir. */
async function cacheDirFor(o: { cacheDir?: string }): Promise<string> {
  if (o.cacheDir) return o.cacheDir;
  const [{ defaultKdsCacheDir }, path] = await Promise.all([import('../../certs/kds.js'), import('node:path')]);
  return path.join(defaultKdsCacheDir(), 'snp');
}

async function kdsClient(o: { kdsUrl?: string; offline?: boolean; cacheDir?: string }) {
  const { KdsClient } = await import('../../snp/kds.js');
  return new KdsClient({ cacheDir: await cacheDirFor(o), ...(o.kdsUrl ? { baseUrl: o.kdsUrl } : {}), ...(o.offline ? { offline: true } : {}) });
}

/** Certificates of a directory in snpguest's layout (vcek|vlek|ask|asvk|ark .der/.pem/.crt/.cer, cert_chain.pem, crl.der). */
async function readCertDir(dir: string): Promise<{ vek?: Buffer; vekName?: string; intermediate?: Buffer; ark?: Buffer; crl?: Buffer }> {
  const fs = await import('node:fs');
  const path = await import('node:path');
  const { InputError } = await import('../../errors.js');
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (e) {
    throw new InputError(`${dir}: cannot read the certificate directory: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const out: { vek?: Buffer; vekName?: string; intermediate?: Buffer; ark?: Buffer; crl?: Buffer } = {};
  for (const n of names.sort()) {
    const m = /^(vcek|vlek|ask|asvk|ark|cert_chain|crl)\.(der|pem|crt|cer|cert)$/i.exec(n);
    if (!m) continue;
    const b = await readInputFile(path.join(dir, n), n);
    const k = m[1]!.toLowerCase();
    if (k === 'vcek' || k === 'vlek') {
      out.vek ??= b;
      out.vekName ??= path.join(dir, n);
    } else if (k === 'ask' || k === 'asvk') out.intermediate ??= b;
    else if (k === 'ark') out.ark ??= b;
    else if (k === 'crl') out.crl ??= b;
    else if (k === 'cert_chain') {
      const { parseAmdCerts } = await import('../../snp/x509.js');
      const [inter, ark] = parseAmdCerts(b, n);
      out.intermediate ??= inter?.der;
      out.ark ??= ark?.der;
    }
  }
  if (!out.vek) throw new InputError(`${dir}: no vcek or vlek certificate (.der/.pem) in the directory`);
  return out;
}

async function verifyCmd(o: VerifyOpts): Promise<number> {
  const { UsageError } = await import('../../errors.js');
  const sources = [o.vcek, o.certs, o.certTable, o.kds ? 'kds' : undefined].filter((x) => x !== undefined);
  if (sources.length > 1) throw new UsageError('give one of --vcek, --certs, --cert-table, --kds');
  if (o.reportData !== undefined && o.bind !== undefined) throw new UsageError('give --report-data or --bind, not both');
  if (o.crl !== undefined && o.fetchCrl) throw new UsageError('give --crl or --fetch-crl, not both');
  const [{ verifySnpReport, verdictJson }, { parseReport }] = await Promise.all([import('../../snp/verify.js'), import('../../snp/report.js')]);
  const product = await productArg(o.product);
  const report = await readReport(o.report);
  const policy = {
    ...(o.measurement.length ? { measurements: o.measurement.map((m) => hexArg(m, '--measurement', 48)) } : {}),
    ...(o.allowDebug ? { allowDebug: true } : {}),
    ...(o.allowMigrateMa ? { allowMigrateMa: true } : {}),
    ...(o.smt === false ? { allowSmt: false } : {}),
    ...(o.allowProvisional ? { allowProvisional: true } : {}),
    ...(o.allowMaskedChipId ? { allowMaskedChipId: true } : {}),
    ...(o.requireCrl ? { requireCrl: true } : {}),
    ...(o.minTcb ? { minTcb: o.minTcb } : {}),
    ...(o.minLaunchTcb ? { minLaunchTcb: o.minLaunchTcb } : {}),
    ...(o.minFirmware ? { minFirmware: o.minFirmware } : {}),
    ...(o.versions ? { versions: o.versions } : {}),
    ...(o.vmpl !== undefined ? { vmpl: o.vmpl } : {}),
    ...(product ? { product } : {}),
    ...(o.reportData !== undefined ? { reportData: hexArg(o.reportData, '--report-data', 64, true) } : {}),
    ...(o.bind !== undefined ? { reportDataBoundTo: hexArg(o.bind, '--bind') } : {}),
    ...(o.hostData !== undefined ? { hostData: hexArg(o.hostData, '--host-data', 32) } : {}),
    ...(o.idKeyDigest.length ? { idKeyDigests: o.idKeyDigest.map((d) => hexArg(d, '--id-key-digest', 48)) } : {}),
    ...(o.authorKeyDigest.length ? { authorKeyDigests: o.authorKeyDigest.map((d) => hexArg(d, '--author-key-digest', 48)) } : {}),
    ...(o.familyId !== undefined ? { familyId: hexArg(o.familyId, '--family-id', 16) } : {}),
    ...(o.imageId !== undefined ? { imageId: hexArg(o.imageId, '--image-id', 16) } : {}),
    ...(o.minGuestSvn !== undefined ? { minGuestSvn: o.minGuestSvn } : {}),
    ...(o.chipId.length ? { chipIds: o.chipId.map((c) => hexArg(c, '--chip-id')) } : {}),
  };

  let vek: Buffer | undefined;
  let vekSource: string | undefined;
  let intermediate: Buffer | undefined;
  let ark: Buffer | undefined;
  let crl: Buffer | undefined;
  if (o.vcek) {
    // A PEM bundle (Azure's THIM: VCEK, ASK, ARK) gives the leaf first and may carry its chain.
    const { parseAmdCerts } = await import('../../snp/x509.js');
    const raw = await readInputFile(o.vcek, 'a VCEK/VLEK certificate');
    let certs: { der: Buffer; subjectCn: string }[] = [];
    try {
      certs = parseAmdCerts(raw, o.vcek);
    } catch {
      certs = []; // the verifier names the problem as a failed check
    }
    vek = certs[0]?.der ?? raw;
    vekSource = o.vcek;
    for (const c of certs.slice(1)) {
      if (c.subjectCn.startsWith('ARK-')) ark ??= c.der;
      else if (c.subjectCn.startsWith('SEV-')) intermediate ??= c.der;
    }
  } else if (o.certs) {
    const d = await readCertDir(o.certs);
    ({ vek, intermediate, ark, crl } = d);
    vekSource = d.vekName;
  } else if (o.certTable) {
    const { parseCertTable, certTableEntry } = await import('../../snp/certtable.js');
    const t = parseCertTable(await readInputFile(o.certTable, 'a certificate table'));
    vek = certTableEntry(t, 'VCEK') ?? certTableEntry(t, 'VLEK');
    intermediate = certTableEntry(t, 'ASK');
    ark = certTableEntry(t, 'ARK');
    crl = certTableEntry(t, 'CRL');
    vekSource = `the certificate table ${o.certTable}`;
  }
  if (o.crl) crl = await readInputFile(o.crl, 'a CRL');

  // KDS: needs the parsed report (product, chip id, REPORTED_TCB). A report that does not parse goes to the verifier as is.
  let parsed: ReturnType<typeof parseReport> | undefined;
  if (o.kds || o.fetchCrl) {
    const { tcbLayoutOf } = await import('../../snp/product.js');
    try {
      parsed = parseReport(report, product ? { layout: tcbLayoutOf(product) } : {});
    } catch {
      parsed = undefined;
    }
  }
  const { reportProduct } = await import('../../snp/report.js');
  const kdsProduct = parsed ? (reportProduct(parsed) ?? product) : undefined;
  if ((o.kds || o.fetchCrl) && parsed && !kdsProduct) throw new UsageError(`a version ${parsed.version} report carries no CPUID: give --product for KDS`);
  if (o.kds && parsed && kdsProduct) {
    const kds = await kdsClient(o);
    if (parsed.keyInfo.signingKey === 'VLEK')
      throw new UsageError('a VLEK-signed report: KDS does not give VLEKs to end users; pass the VLEK with --vcek or --cert-table');
    const r = await kds.vcek(kdsProduct, parsed.chipId, parsed.reportedTcb);
    vek = r.der;
    vekSource = r.source === 'cache' ? `the KDS cache (${r.url})` : r.url;
  }
  if (o.fetchCrl && parsed && kdsProduct) {
    const kds = await kdsClient(o);
    crl = (await kds.crl(kdsProduct, parsed.keyInfo.signingKey === 'VLEK' ? 'vlek' : 'vcek')).der;
  }

  const v = verifySnpReport({
    report,
    ...(vek ? { vek } : {}),
    ...(vekSource ? { vekSource } : {}),
    ...(intermediate ? { intermediate } : {}),
    ...(ark ? { ark } : {}),
    ...(crl ? { crl } : {}),
    ...(product ? { product } : {}),
    ...(o.at ? { at: o.at } : {}),
    policy,
  });
  if (o.quiet) return v.ok ? EXIT_OK : EXIT_FAIL;
  if (o.json) printJson(verdictJson(v));
  else {
    const mark = { pass: 'ok  ', fail: 'FAIL', skip: 'skip' } as const;
    const lines = v.checks.map((c) => `${mark[c.outcome]} ${String(c.step).padStart(2)} ${c.id}: ${c.detail}\n`);
    process.stdout.write(lines.join(''));
    process.stdout.write(
      v.ok ? `valid: ${v.product ?? '?'} ${v.signer ?? ''} report, measurement ${v.report ? v.report.measurement.toString('hex') : '?'}\n` : '',
    );
  }
  if (!v.ok && !o.json) process.stderr.write(`sevkit: the attestation report is NOT valid (failed: ${v.failed.map((c) => c.id).join(', ')})\n`);
  return v.ok ? EXIT_OK : EXIT_FAIL;
}

async function showCmd(file: string, o: { product?: string; json?: boolean }): Promise<void> {
  const [{ parseReport, formatFirmwareVersion }, { setFlags, encodeGuestPolicy, encodePlatformInfo }, { formatTcb, tcbJson }, { tcbLayoutOf }] =
    await Promise.all([import('../../snp/report.js'), import('../../snp/flags.js'), import('../../snp/tcb.js'), import('../../snp/product.js')]);
  const product = await productArg(o.product);
  const r = parseReport(await readReport(file), product ? { layout: tcbLayoutOf(product) } : {});
  const { reportProduct } = await import('../../snp/report.js');
  const p = reportProduct(r) ?? product;
  const hex = (b: Buffer) => b.toString('hex');
  const fields: [string, string][] = [
    ['VERSION', String(r.version)],
    [
      'product',
      p
        ? `${p}${r.cpuid ? ` (CPUID family 0x${r.cpuid.family.toString(16)} model 0x${r.cpuid.model.toString(16)} stepping ${r.cpuid.stepping})` : ' (given)'}`
        : 'unknown (a v2 report has no CPUID; give --product)',
    ],
    ['GUEST_SVN', String(r.guestSvn)],
    ['POLICY', `0x${encodeGuestPolicy(r.policy).toString(16)} ABI ${r.policy.abiMajor}.${r.policy.abiMinor} ${setFlags(r.policy).join(' ')}`.trim()],
    ['FAMILY_ID', hex(r.familyId)],
    ['IMAGE_ID', hex(r.imageId)],
    ['VMPL', String(r.vmpl)],
    ['SIGNATURE_ALGO', String(r.signatureAlgo)],
    ['PLATFORM_INFO', `0x${encodePlatformInfo(r.platformInfo).toString(16)} ${setFlags(r.platformInfo).join(' ')}`.trim()],
    ['KEY_INFO', `signing key ${r.keyInfo.signingKey}${r.keyInfo.authorKeyEn ? ', AUTHOR_KEY_EN' : ''}${r.keyInfo.maskChipKey ? ', MASK_CHIP_KEY' : ''}`],
    ['REPORT_DATA', hex(r.reportData)],
    ['MEASUREMENT', hex(r.measurement)],
    ['HOST_DATA', hex(r.hostData)],
    ['ID_KEY_DIGEST', hex(r.idKeyDigest)],
    ['AUTHOR_KEY_DIGEST', hex(r.authorKeyDigest)],
    ['REPORT_ID', hex(r.reportId)],
    ['REPORT_ID_MA', hex(r.reportIdMa)],
    ['CHIP_ID', hex(r.chipId)],
    ['CURRENT_TCB', formatTcb(r.currentTcb)],
    ['REPORTED_TCB', formatTcb(r.reportedTcb)],
    ['COMMITTED_TCB', formatTcb(r.committedTcb)],
    ['LAUNCH_TCB', formatTcb(r.launchTcb)],
    ['CURRENT firmware', formatFirmwareVersion(r.currentVersion)],
    ['COMMITTED firmware', formatFirmwareVersion(r.committedVersion)],
    ...(r.version >= 5
      ? ([
          ['LAUNCH_MIT_VECTOR', `0x${(r.launchMitVector ?? 0n).toString(16)}`],
          ['CURRENT_MIT_VECTOR', `0x${(r.currentMitVector ?? 0n).toString(16)}`],
        ] as [string, string][])
      : []),
  ];
  if (o.json) {
    printJson({
      version: r.version,
      product: p ?? null,
      cpuid: r.cpuid ?? null,
      guestSvn: r.guestSvn,
      policy: { raw: `0x${encodeGuestPolicy(r.policy).toString(16)}`, ...r.policy },
      familyId: hex(r.familyId),
      imageId: hex(r.imageId),
      vmpl: r.vmpl,
      signatureAlgo: r.signatureAlgo,
      platformInfo: { raw: `0x${encodePlatformInfo(r.platformInfo).toString(16)}`, flags: setFlags(r.platformInfo) },
      keyInfo: r.keyInfo,
      reportData: hex(r.reportData),
      measurement: hex(r.measurement),
      hostData: hex(r.hostData),
      idKeyDigest: hex(r.idKeyDigest),
      authorKeyDigest: hex(r.authorKeyDigest),
      reportId: hex(r.reportId),
      reportIdMa: hex(r.reportIdMa),
      chipId: hex(r.chipId),
      currentTcb: tcbJson(r.currentTcb),
      reportedTcb: tcbJson(r.reportedTcb),
      committedTcb: tcbJson(r.committedTcb),
      launchTcb: tcbJson(r.launchTcb),
      currentVersion: formatFirmwareVersion(r.currentVersion),
      committedVersion: formatFirmwareVersion(r.committedVersion),
      launchMitVector: r.launchMitVector === undefined ? null : `0x${r.launchMitVector.toString(16)}`,
      currentMitVector: r.currentMitVector === undefined ? null : `0x${r.currentMitVector.toString(16)}`,
    });
    return;
  }
  const w = Math.max(...fields.map(([k]) => k.length));
  process.stdout.write(fields.map(([k, v]) => `${k.padEnd(w)}  ${v}\n`).join(''));
}

interface FetchOpts {
  report?: string;
  product?: string;
  vlek?: boolean;
  out?: string;
  kdsUrl?: string;
  offline?: boolean;
  cacheDir?: string;
}

async function fetchCmd(what: string, o: FetchOpts): Promise<void> {
  const { UsageError } = await import('../../errors.js');
  if (!['vcek', 'ca', 'crl'].includes(what)) throw new UsageError(`unknown item '${what}' (expected vcek, ca or crl)`);
  const kds = await kdsClient(o);
  let product = await productArg(o.product);
  const kind = o.vlek ? 'vlek' : 'vcek';
  if (what === 'vcek') {
    if (!o.report) throw new UsageError('fetch vcek needs --report FILE (the chip id and REPORTED_TCB come from it)');
    const [{ parseReport, reportProduct }, { tcbLayoutOf }] = await Promise.all([import('../../snp/report.js'), import('../../snp/product.js')]);
    const r = parseReport(await readReport(o.report), product ? { layout: tcbLayoutOf(product) } : {});
    const rp = reportProduct(r);
    if (rp && product && rp !== product) throw new UsageError(`the report's CPUID says ${rp}, not ${product}`);
    product = rp ?? product;
    if (!product) throw new UsageError(`a version ${r.version} report carries no CPUID: give --product`);
    const got = await kds.vcek(product, r.chipId, r.reportedTcb);
    await writeOutputFile(o.out ?? 'vcek.der', got.der, { what: 'the VCEK' });
    process.stderr.write(`sevkit: wrote ${o.out ?? 'vcek.der'} (${got.source === 'cache' ? 'from the cache' : got.url})\n`);
    return;
  }
  if (!product) throw new UsageError(`fetch ${what} needs --product (Milan, Genoa, Turin)`);
  const got = what === 'ca' ? await kds.certChain(product, kind) : await kds.crl(product, kind);
  const out = o.out ?? (what === 'ca' ? 'cert_chain.pem' : 'crl.der');
  await writeOutputFile(out, got.der, { what: what === 'ca' ? 'the certificate chain' : 'the CRL' });
  process.stderr.write(`sevkit: wrote ${out} (${got.source === 'cache' ? 'from the cache' : got.url})\n`);
}

/** Creates `sevkit snp` and registers verify, show and fetch. */
export function register(program: Command): Command {
  const snp = program
    .command('snp')
    .description('AMD SEV-SNP: verify attestation reports against AMD roots, show them, fetch certificates from AMD KDS; launch digests, ID blocks');

  snp
    .command('verify')
    .description('verify an SNP attestation report: AMD chain, signature, bindings and policy, every check listed (exit 0 valid, 1 not)')
    .requiredOption('--report <file>', 'the 1184-byte report (raw, or hex text)')
    .option('--vcek <file>', 'the VCEK or VLEK (DER or PEM; a PEM bundle may add ASK and ARK)')
    .option('--certs <dir>', 'a directory with vcek|vlek, ask|asvk, ark (.der/.pem), cert_chain.pem, crl.der')
    .option('--cert-table <file>', "the extended report's certificate table (SNP_GET_EXT_REPORT, configfs-tsm auxblob)")
    .option('--kds', 'fetch the VCEK from AMD KDS (cached on disk by product, chip id and TCB)')
    .option('--kds-url <url>', 'KDS base URL (default https://kdsintf.amd.com)')
    .option('--offline', 'never contact KDS: use the cache only')
    .option('--cache-dir <dir>', 'KDS cache directory (default: $SEVKIT_KDS_CACHE or ~/.cache/sevkit/kds, + /snp)')
    .option('--product <name>', 'Milan, Genoa (Siena, Bergamo) or Turin: needed for v2 reports, must match the CPUID of v3+')
    .option('--at <time>', 'verification time for certificate validity (ISO 8601; default now)', timeArg)
    .option('--crl <file>', "AMD's CRL (DER) for the product, checked against the ARK")
    .option('--fetch-crl', 'fetch the CRL from KDS')
    .option('--require-crl', 'fail when no CRL is checked')
    .option('--measurement <hex>', 'expected MEASUREMENT (48 bytes; repeatable: any of them)', collect, [])
    .option('--allow-debug', 'accept POLICY.DEBUG (the host can read guest memory)')
    .option('--allow-migrate-ma', 'accept POLICY.MIGRATE_MA')
    .option('--no-smt', 'refuse POLICY.SMT')
    .option('--allow-provisional', 'accept provisional firmware (COMMITTED < CURRENT)')
    .option('--allow-masked-chip-id', 'accept a VCEK report whose CHIP_ID is masked (it is then not bound to the chip)')
    .option('--min-tcb <spls>', 'minimum REPORTED and CURRENT TCB, e.g. bl=3,tee=0,snp=8,ucode=115[,fmc=0]', tcbArg)
    .option('--min-launch-tcb <spls>', 'minimum LAUNCH_TCB, same form', tcbArg)
    .option('--min-firmware <ver>', 'minimum CURRENT firmware MAJOR.MINOR[.BUILD]', firmwareArg)
    .option('--versions <range>', 'accepted report versions N or MIN-MAX (default 2-5)', versionsArg)
    .option('--vmpl <n>', 'required VMPL (default 0)', (v) => parseIntArg(v, '--vmpl'))
    .option('--report-data <hex>', 'expected REPORT_DATA (up to 64 bytes, zero-padded)')
    .option('--bind <hex>', 'REPORT_DATA must be SHA-512 of these bytes (nonce and/or key)')
    .option('--host-data <hex>', 'expected HOST_DATA (32 bytes)')
    .option('--id-key-digest <hex>', 'trusted ID_KEY_DIGEST (48 bytes; repeatable)', collect, [])
    .option('--author-key-digest <hex>', 'trusted AUTHOR_KEY_DIGEST (48 bytes; repeatable)', collect, [])
    .option('--family-id <hex>', 'expected FAMILY_ID (16 bytes)')
    .option('--image-id <hex>', 'expected IMAGE_ID (16 bytes)')
    .option('--min-guest-svn <n>', 'minimum GUEST_SVN', (v) => parseIntArg(v, '--min-guest-svn'))
    .option('--chip-id <hex>', 'allowed CHIP_ID (64 bytes, or 8 for Turin; repeatable)', collect, [])
    .option('--json', 'print the verdict as JSON: version, product, policy, measurement, reported TCB, chip id, every check')
    .option('-q, --quiet', 'print nothing; only the exit code tells')
    .action(action((o: VerifyOpts, cmd: Command) => verifyCmd({ ...o, quiet: Boolean(o.quiet ?? (cmd.optsWithGlobals() as { quiet?: boolean }).quiet) })));

  snp
    .command('show')
    .description('print the fields of an SNP attestation report')
    .argument('<file>', 'the 1184-byte report (raw, or hex text)')
    .option('--product <name>', 'the product, for the TCB layout of a v2 report')
    .option('--json', 'print the fields as JSON')
    .action(action((file: string, o: { product?: string; json?: boolean }) => showCmd(file, o)));

  snp
    .command('fetch')
    .description("fetch from AMD KDS: a report's VCEK, a product's cert_chain (ca) or CRL")
    .argument('<what>', 'vcek, ca or crl')
    .option('--report <file>', 'the report whose chip id and REPORTED_TCB name the VCEK (vcek)')
    .option('--product <name>', 'Milan, Genoa, Turin (ca, crl; vcek for v2 reports)')
    .option('--vlek', 'the VLEK chain (ASVK) instead of the VCEK chain (ca, crl)')
    .option('-o, --out <file>', "output file, '-' for stdout (default vcek.der, cert_chain.pem or crl.der)")
    .option('--kds-url <url>', 'KDS base URL (default https://kdsintf.amd.com)')
    .option('--offline', 'never contact KDS: use the cache only')
    .option('--cache-dir <dir>', 'KDS cache directory (default: $SEVKIT_KDS_CACHE or ~/.cache/sevkit/kds, + /snp)')
    .action(action((what: string, o: FetchOpts) => fetchCmd(what, o)));

  registerSnpLaunch(snp);
  registerGuest(snp);
  return snp;
}
