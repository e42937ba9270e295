/**
 * The simulated SNP guest's firmware side: attestation reports signed by a
 * simulated VCEK (or VLEK) under the simulator's TEST ARK/ASK, in the layout of
 * the configured product (Milan, Genoa, Turin), the certificate table a host
 * would hand out, and derived keys. REPORT_DATA and VMPL come from the request;
 * policy, measurement and the ID fields from the configured launch
 * (config.ts) or, for a named guest, from the launch the QEMU wrapper recorded
 * for it (launch-link.ts); TCBs, chip id and masks from the platform's SNP state
 * (SNP_SET_CONFIG). THIS IS A TEST PLATFORM: nothing here proves anything
 * about real AMD hardware.
 */
import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../../util/fs.js';
import { decodeGuestPolicy, decodePlatformInfo } from '../../snp/flags.js';
import { hwidLength, tcbLayoutOf, type SnpProduct } from '../../snp/product.js';
import { encodeReport, setSignature, signedRegion, type ReportCpuid, type SnpReport } from '../../snp/report.js';
import { decodeTcb, encodeTcb, makeTcb, type TcbVersion } from '../../snp/tcb.js';
import { deriveBytes, deriveRsa, ecdsaSignDeterministic } from '../detcrypto.js';
import type { SimPlatform } from '../platform.js';
import { CERT_TABLE_GUIDS, encodeCertTable } from '../../snp/certtable.js';
import type { ProductRoots } from '../../snp/roots.js';
import { parseAmdCert } from '../../snp/x509.js';
import { deriveLeafKey, mintAsvk, mintCrl, mintRoots, mintVcek, mintVlek, vcekKeyLabel } from './certs.js';
import { readSnpGuestConfig, resolveSnpGuestConfig, type ResolvedSnpGuestConfig } from './config.js';
import { launchConfigOf, readSnpLaunchRecord } from './launch-link.js';

/** CPUID (family, model, stepping) of the simulated part of each product (EPYC 7003 / 9004 / 9005). */
const CPUID: Record<SnpProduct, ReportCpuid> = {
  Milan: { family: 0x19, model: 0x01, stepping: 1 },
  Genoa: { family: 0x19, model: 0x11, stepping: 1 },
  Turin: { family: 0x1a, model: 0x02, stepping: 1 },
};

/** The CSP name in a simulated VLEK. */
export const SIM_VLEK_CSP = 'CN=sevkit-simulator.test';

/** Everything a verifier needs for one simulated chip at one REPORTED_TCB, as DER. */
export interface SimSnpChain {
  product: SnpProduct;
  ark: Buffer;
  ask: Buffer;
  vcek: Buffer;
  /** ARK-signed CRL (no entries) */
  crl: Buffer;
  /** present when the configuration signs with a VLEK */
  asvk?: Buffer;
  vlek?: Buffer;
  /** hwID as KDS names the chip (64 bytes; Turin 8) */
  hwid: Buffer;
  reportedTcb: TcbVersion;
}

/** A derived-key request that the firmware refuses (MSG_KEY_RSP status INVALID_PARAM). */
export const KEY_STATUS_INVALID_PARAM = 0x16;

const GUEST_FIELD_BITS = 7; // b0 policy .. b6 launch_mit_vector

export class SimSnpGuest {
  private readonly cache = new Map<string, unknown>();

  constructor(readonly platform: SimPlatform) {}

  /**
   * The launch values in force, re-read on every call: snp-guest.json, or for a named guest `vm`
   * the launch the wrapper recorded for it (`guests/<vm>/snp-launch.json`) over snp-guest.json's
   * product, report version, keys and VMPL floor, with a REPORT_ID of its own. Throws
   * SnpGuestConfigError, and SimGuestUnknownError when `vm` has no launch (never another's values).
   */
  config(vm?: string): ResolvedSnpGuestConfig {
    const dflt: SnpProduct = this.platform.product === 'milan' ? 'Milan' : 'Genoa';
    const base = readSnpGuestConfig(this.platform.stateDir);
    if (vm === undefined) return resolveSnpGuestConfig(base, dflt);
    const launch = launchConfigOf(readSnpLaunchRecord(this.platform.stateDir, vm));
    // The firmware makes REPORT_ID at launch: one per guest, the same in each of its reports.
    const reportId = deriveBytes(this.platform.seed, `snp-report-id:guest:${vm}`, 32).toString('hex');
    return resolveSnpGuestConfig({ ...base, ...launch, reportId }, dflt);
  }

  private memo<T>(key: string, make: () => T): T {
    let v = this.cache.get(key) as T | undefined;
    if (v === undefined) {
      v = make();
      this.cache.set(key, v);
    }
    return v;
  }

  /** A platform TCB (u64, Milan/Genoa byte order as SNP_PLATFORM_STATUS holds it) in the product's layout. */
  private tcbFor(product: SnpProduct, v: bigint): TcbVersion {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(v);
    const legacy = decodeTcb(b, 'legacy');
    if (tcbLayoutOf(product) === 'legacy') return legacy;
    return makeTcb('turin', { fmc: 0, bootloader: legacy.bootloader, tee: legacy.tee, snp: legacy.snp, microcode: legacy.microcode });
  }

  /** The chip's hwID for KDS (first 8 bytes of the chip id on Turin). */
  hwid(product: SnpProduct): Buffer {
    return this.platform.snpGuestView().chipId.subarray(0, hwidLength(product));
  }

  private asvkKey(product: SnpProduct): KeyObject {
    return this.memo(`asvk-key:${product}`, () => {
      // RSA-4096 derivation takes seconds: keep it in the state dir (0600) once made.
      const file = path.join(this.platform.stateDir, `snp-asvk-${product.toLowerCase()}.key.pem`);
      try {
        return crypto.createPrivateKey(fs.readFileSync(file));
      } catch {
        const k = deriveRsa(this.platform.seed, `snp-asvk:${product}`, 4096).privateKey;
        writeFileAtomic(file, k.export({ format: 'pem', type: 'pkcs8' }) as string, 0o600);
        return k;
      }
    });
  }

  /**
   * The simulator's TEST ARK, ASK and ASVK of `product` as a verifier's trust anchor (what an owner
   * uses in place of AMD's built-in roots when it talks to a simulated guest; never for hardware).
   */
  testRoots(product: SnpProduct): ProductRoots {
    const c = this.chain(product, undefined, true);
    return {
      product,
      ark: parseAmdCert(c.ark, `TEST ARK-${product}`),
      ask: parseAmdCert(c.ask, `TEST SEV-${product}`),
      asvk: parseAmdCert(c.asvk!, `TEST SEV-VLEK-${product}`),
    };
  }

  /** The TEST chain for a product and REPORTED_TCB (default: the configured product and the platform's). */
  chain(product: SnpProduct = this.config().product, reportedTcb?: TcbVersion, withVlek = false): SimSnpChain {
    const view = this.platform.snpGuestView();
    const tcb = reportedTcb ?? this.tcbFor(product, view.reportedTcb);
    const tcbHex = encodeTcb(tcb).toString('hex');
    const hwid = this.hwid(product);
    const { ark, ask } = this.memo(`roots:${product}`, () => mintRoots(view.seed, product, view.arkKey, view.askKey));
    const vcek = this.memo(`vcek:${product}:${tcbHex}`, () =>
      mintVcek({ seed: view.seed, product, hwid, reportedTcb: tcb, askKey: view.askKey }, this.vcekKey(product, tcb)),
    );
    const crl = this.memo(`crl:${product}`, () => mintCrl(view.seed, product, view.arkKey));
    const out: SimSnpChain = { product, ark, ask, vcek, crl, hwid: Buffer.from(hwid), reportedTcb: tcb };
    if (withVlek) {
      out.asvk = this.memo(`asvk:${product}`, () => mintAsvk(view.seed, product, view.arkKey, this.asvkKey(product)));
      out.vlek = this.memo(`vlek:${product}:${tcbHex}`, () =>
        mintVlek({ seed: view.seed, product, reportedTcb: tcb, asvkKey: this.asvkKey(product), cspId: SIM_VLEK_CSP }, this.vlekKey(product, tcb)),
      );
    }
    return out;
  }

  private vcekKey(product: SnpProduct, tcb: TcbVersion): KeyObject {
    const tcbBytes = encodeTcb(tcb);
    return this.memo(`vcek-key:${product}:${tcbBytes.toString('hex')}`, () =>
      deriveLeafKey(this.platform.seed, vcekKeyLabel(product, this.hwid(product), tcbBytes)),
    );
  }

  private vlekKey(product: SnpProduct, tcb: TcbVersion): KeyObject {
    const tcbBytes = encodeTcb(tcb);
    return this.memo(`vlek-key:${product}:${tcbBytes.toString('hex')}`, () =>
      deriveLeafKey(this.platform.seed, `snp-vlek:${product}:${tcbBytes.toString('hex')}`),
    );
  }

  /** The certificate table the host supplies for extended requests (24 zero bytes when it supplies none). */
  certTable(): Buffer {
    const cfg = this.config();
    if (!cfg.certTable) return encodeCertTable([]);
    const vlek = cfg.signingKey === 'VLEK';
    const c = this.chain(cfg.product, undefined, vlek);
    const g = CERT_TABLE_GUIDS;
    return vlek
      ? encodeCertTable([
          { guid: g.ARK, data: c.ark },
          { guid: g.ASK, data: c.asvk! },
          { guid: g.VLEK, data: c.vlek! },
        ])
      : encodeCertTable([
          { guid: g.ARK, data: c.ark },
          { guid: g.ASK, data: c.ask },
          { guid: g.VCEK, data: c.vcek },
        ]);
  }

  /**
   * A signed report for REPORT_DATA (64 bytes) at `vmpl` (already range-checked
   * by the caller), for guest `vm` (config(vm)). MASK_CHIP_ID zeroes CHIP_ID; MASK_CHIP_KEY leaves the
   * signature zero, as the firmware does.
   */
  report(reportData: Buffer, vmpl: number, vm?: string): Buffer {
    const cfg = this.config(vm);
    const view = this.platform.snpGuestView();
    const product = cfg.product;
    const current = this.tcbFor(product, view.currentTcb);
    const reported = this.tcbFor(product, view.reportedTcb);
    const chipId = Buffer.alloc(64);
    if (!view.maskChipId) this.hwid(product).copy(chipId);
    const fw = { major: view.api.major, minor: view.api.minor, build: view.api.build };
    const r: SnpReport = {
      version: cfg.reportVersion,
      guestSvn: cfg.guestSvn,
      policy: decodeGuestPolicy(cfg.policy),
      familyId: cfg.familyId,
      imageId: cfg.imageId,
      vmpl,
      signatureAlgo: 1,
      currentTcb: current,
      platformInfo: decodePlatformInfo(0x25n), // SMT, ECC, alias check complete
      keyInfo: { authorKeyEn: cfg.authorKeyEn, maskChipKey: view.maskChipKey, signingKey: cfg.signingKey },
      reportData,
      measurement: cfg.measurement,
      hostData: cfg.hostData,
      idKeyDigest: cfg.idKeyDigest,
      authorKeyDigest: cfg.authorKeyDigest,
      reportId: cfg.reportId ?? deriveBytes(view.seed, 'snp-report-id', 32),
      reportIdMa: Buffer.alloc(32, 0xff),
      reportedTcb: reported,
      cpuid: cfg.reportVersion >= 3 ? CPUID[product] : undefined,
      chipId,
      committedTcb: current,
      currentVersion: fw,
      committedVersion: fw,
      launchTcb: current,
      launchMitVector: cfg.reportVersion >= 5 ? 0n : undefined,
      currentMitVector: cfg.reportVersion >= 5 ? 0n : undefined,
      signatureR: Buffer.alloc(48),
      signatureS: Buffer.alloc(48),
    };
    const bytes = encodeReport(r);
    if (!view.maskChipKey) {
      const key = cfg.signingKey === 'VLEK' ? this.vlekKey(product, reported) : this.vcekKey(product, reported);
      setSignature(bytes, ecdsaSignDeterministic(key, 'sha384', signedRegion(bytes)));
    }
    return bytes;
  }

  /**
   * MSG_KEY_REQ: a key bound to the chip (VCEK root) or the VM (VMRK root), the
   * VMPL and the selected launch fields. `req` is the 32-byte request. Returns
   * the message status and, on 0, the 32-byte key. `vm`: the named guest, as config(vm) (its VMRK is its own).
   */
  derivedKey(req: Buffer, vm?: string): { status: number; key?: Buffer } {
    const cfg = this.config(vm);
    const view = this.platform.snpGuestView();
    const root = req.readUInt32LE(0);
    const rsvd = req.readUInt32LE(4);
    const select = req.readBigUInt64LE(8);
    const vmpl = req.readUInt32LE(16);
    const svn = req.readUInt32LE(20);
    const tcbBytes = req.subarray(24, 32);
    if (root > 1 || rsvd !== 0 || select >> BigInt(GUEST_FIELD_BITS) !== 0n || vmpl > 3 || vmpl < cfg.vmplFloor || svn > cfg.guestSvn) {
      return { status: KEY_STATUS_INVALID_PARAM };
    }
    const current = this.tcbFor(cfg.product, view.currentTcb);
    if ((select & 0x20n) !== 0n) {
      const asked = decodeTcb(tcbBytes, current.layout);
      for (const c of ['bootloader', 'tee', 'snp', 'microcode', 'fmc'] as const) {
        if ((asked[c] ?? 0) > (current[c] ?? 0)) return { status: KEY_STATUS_INVALID_PARAM };
      }
    }
    const vmrkOf = vm === undefined ? '' : `:guest:${vm}`;
    const rootKey = deriveBytes(view.seed, `snp-derived-root:${root === 0 ? 'vcek' : `vmrk${vmrkOf}`}:${view.chipId.toString('hex')}`, 32);
    const mac = crypto.createHmac('sha256', rootKey);
    mac.update(req.subarray(8, 20)); // select + vmpl
    const fields: [bigint, () => Buffer][] = [
      [0x1n, () => u64(cfg.policy)],
      [0x2n, () => cfg.imageId],
      [0x4n, () => cfg.familyId],
      [0x8n, () => cfg.measurement],
      [0x10n, () => req.subarray(20, 24)],
      [0x20n, () => tcbBytes],
      [0x40n, () => Buffer.alloc(8)],
    ];
    for (const [bit, value] of fields) if ((select & bit) !== 0n) mac.update(value());
    const key = mac.digest();
    rootKey.fill(0);
    return { status: 0, key };
  }
}

function u64(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v & 0xffffffffffffffffn);
  return b;
}
