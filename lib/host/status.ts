/**
 * `sev-status`'s report: the checks (checks.ts) over the host facts (gather.ts), a
 * verdict per guest type, and the facts as shown. Pure over HostFacts; render.ts
 * prints it.
 *
 * ── JSON schema "sevkit.sev-status/v1" (`sev-status --json`) ─────────────────
 * Stable: fields are only ever added; a change in meaning bumps the version.
 * {
 *   "schema": "sevkit.sev-status/v1",
 *   "ready": boolean,                      // verdicts[required].ready; also the exit code (0/1)
 *   "required": "sev" | "sev-es" | "sev-snp",
 *   "host": { "root": string,              // "/" or the fake root (SEVKIT_HOST_ROOT)
 *             "simulated": boolean,        // true when root or CPUID are not the real host's
 *             "kernel": string | null, "euid": number,
 *             "cpuidSource": "native" | "file" | "cpuinfo" | "none" },
 *   "cpu": { "vendor": string, "brand": string, "family": number, "model": number,
 *            "sme", "sev", "sevEs", "snp", "vmpl", "pageFlush": boolean,
 *            "cbitpos", "reducedPhysBits", "numVmpls", "maxAsids", "minSevAsid", "sevAsids", "sevEsAsids": number,
 *            "syscfg": "0x…" | null },       // SYSCFG MSR (hex string) or null when unreadable
 *   "kvm": { "moduleLoaded": boolean,
 *            "sev" | "sevEs" | "sevSnp": "enabled" | "disabled" | "missing" | "error",
 *            "device": { "path": "/dev/kvm", "readable": boolean, "writable": boolean,
 *                        "apiVersion": number | null, "apiVersionSource": "ioctl" | "assumed" | "none" } },
 *   "sevDevice": { "path": "/dev/sev", "exists", "readable", "writable": boolean },
 *   "memlock": { "soft": string | null, "hard": string | null },   // decimal bytes or "unlimited"
 *   "firmware": null                       // --no-firmware
 *            | { "device": string, "available": boolean,
 *                "apiMajor", "apiMinor", "build": number | null, "apiVersion": "M.m" | null,
 *                "state": "UNINIT" | "INIT" | "WORKING" | null, "owner": "self" | "external" | null,
 *                "esEnabled": boolean | null, "guestCount": number | null,
 *                "error": { "code", "message", "fwStatus"?, "fwStatusName"? } | null,
 *                "snp": { …SNP_PLATFORM_STATUS fields… } | null, "snpError": {…} | null },
 *   "qemu": null | { "command", "found": boolean, "version": string | null, "banner": string | null, "error": string | null,
 *                    "cached": boolean },      // true: version remembered for this unchanged binary, QEMU not run
 *   "ovmf": { "dirs": string[], "packageVersion": string | null,
 *             "images": [{ "path", "size", "guidTable", "sevEsResetBlock", "secretArea", "kernelHashes", "snpMetadata" }] },
 *   "checks": [{ "id": string,             // stable ids, see CHECK_IDS
 *                "group": "cpu" | "kernel" | "device" | "firmware" | "userspace" | "limits" | "snp",
 *                "title": string, "status": "pass" | "fail" | "warn" | "info" | "skip",
 *                "detail": string, "fix": string | null,
 *                "blocks": ("sev" | "sev-es" | "sev-snp")[] }],   // guest types a "fail" makes not ready
 *   "verdicts": { "sev" | "sev-es" | "sev-snp": { "ready": boolean, "reasons": string[], "fixes": string[] } }
 * }
 */
import { brandString, familyModel, sevLeaf, vendorString } from '../platform/cpuid.js';
import type { HostFacts } from './gather.js';
import { evaluateChecks, GUEST_TYPES, limitText, type Check, type GuestType } from './checks.js';

/** The `schema` value of sev-status's JSON report; changes when the report's shape does. */
export const STATUS_SCHEMA = 'sevkit.sev-status/v1';

/** Whether a guest type can run here, and the failing checks' reasons and fixes. */
export interface Verdict {
  ready: boolean;
  reasons: string[];
  fixes: string[];
}

/** Per guest type: ready unless a failing check blocks it, with the reasons and deduplicated fixes. */
export function verdicts(checks: Check[]): Record<GuestType, Verdict> {
  const out = {} as Record<GuestType, Verdict>;
  for (const g of GUEST_TYPES) {
    const failing = checks.filter((c) => c.status === 'fail' && c.blocks.includes(g));
    const fixes: string[] = [];
    for (const c of failing) if (c.fix && !fixes.includes(c.fix)) fixes.push(c.fix);
    out[g] = { ready: failing.length === 0, reasons: failing.map((c) => `${c.title}: ${c.detail}`), fixes };
  }
  return out;
}

/** sev-status's JSON report (schema STATUS_SCHEMA): the facts as shown, every check and the per-guest-type verdicts. */
export interface StatusReport {
  schema: typeof STATUS_SCHEMA;
  ready: boolean;
  required: GuestType;
  host: { root: string; simulated: boolean; kernel: string | null; euid: number; cpuidSource: string };
  cpu: Record<string, unknown>;
  kvm: Record<string, unknown>;
  sevDevice: { path: string; exists: boolean; readable: boolean; writable: boolean };
  memlock: { soft: string | null; hard: string | null };
  firmware: Record<string, unknown> | null;
  qemu: { command: string; found: boolean; version: string | null; banner: string | null; error: string | null; cached: boolean } | null;
  ovmf: { dirs: string[]; packageVersion: string | null; images: unknown[] };
  checks: Check[];
  verdicts: Record<GuestType, Verdict>;
}

/** Judges the facts into a StatusReport; `ready` is the verdict for `required`. */
export function buildReport(f: HostFacts, required: GuestType = 'sev'): StatusReport {
  const checks = evaluateChecks(f);
  const v = verdicts(checks);
  const leaf = sevLeaf(f.cpuid);
  const fm = familyModel(f.cpuid);
  const fw = f.firmware;
  return {
    schema: STATUS_SCHEMA,
    ready: v[required].ready,
    required,
    host: {
      root: f.fs.root || '/',
      simulated: f.fs.isFake || f.cpuid.source === 'file',
      kernel: f.kernel.release,
      euid: f.euid,
      cpuidSource: f.cpuid.source,
    },
    cpu: {
      vendor: vendorString(f.cpuid).replace(/\0/g, ''),
      brand: brandString(f.cpuid),
      family: fm.family,
      model: fm.model,
      sme: leaf.sme,
      sev: leaf.sev,
      sevEs: leaf.sevEs,
      snp: leaf.snp,
      vmpl: leaf.vmpl,
      pageFlush: leaf.pageFlush,
      cbitpos: leaf.cbitpos,
      reducedPhysBits: leaf.reducedPhysBits,
      numVmpls: leaf.numVmpls,
      maxAsids: leaf.maxAsids,
      minSevAsid: leaf.minSevAsid,
      sevAsids: leaf.sevAsids,
      sevEsAsids: leaf.sevEsAsids,
      syscfg: f.syscfg.value === null ? null : `0x${f.syscfg.value.toString(16)}`,
    },
    kvm: {
      moduleLoaded: f.kvmAmd.loaded,
      sev: f.kvmAmd.sev.state,
      sevEs: f.kvmAmd.sevEs.state,
      sevSnp: f.kvmAmd.sevSnp.state,
      device: { path: f.kvm.path, readable: f.kvm.open.ok, writable: f.kvm.openRw.ok, apiVersion: f.kvm.apiVersion, apiVersionSource: f.kvm.apiSource },
    },
    sevDevice: { path: f.devSev.path, exists: f.devSev.exists, readable: f.devSev.readable.ok, writable: f.devSev.writable.ok },
    memlock: { soft: limitText(f.memlock.soft), hard: limitText(f.memlock.hard) },
    firmware: fw
      ? {
          device: fw.device,
          available: fw.status !== null,
          apiMajor: fw.status?.apiMajor ?? null,
          apiMinor: fw.status?.apiMinor ?? null,
          build: fw.status?.build ?? null,
          apiVersion: fw.status ? `${fw.status.apiMajor}.${fw.status.apiMinor}` : null,
          state: fw.status?.state ?? null,
          owner: fw.status?.owner ?? null,
          esEnabled: fw.status?.esEnabled ?? null,
          guestCount: fw.status?.guestCount ?? null,
          error: fw.error ?? null,
          snp: fw.snp,
          snpError: fw.snpError ?? null,
        }
      : null,
    qemu: f.qemu
      ? {
          command: f.qemu.command,
          found: f.qemu.found,
          version: f.qemu.version,
          banner: f.qemu.banner,
          error: f.qemu.error ?? null,
          cached: f.qemu.cached ?? false,
        }
      : null,
    ovmf: { dirs: f.ovmf.dirs, packageVersion: f.ovmf.packageVersion, images: f.ovmf.images },
    checks,
    verdicts: v,
  };
}
