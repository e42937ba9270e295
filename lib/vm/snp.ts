/**
 * SEV-SNP guests on the host side: the QEMU >= 9.1 command line (`sev-snp-guest`,
 * a memfd memory backend, `-bios` firmware) in aleph-vm's SNP order (pinned by its
 * `controller_argv_snp` conformance fixtures), every value checked before QEMU sees it,
 * and the QEMU version check that refuses Debian's 7.2 with one clear line.
 *
 * There is no pre-launch step for SNP (snp-launch.md §3.2): no -S, no launch
 * measurement on the host, no host-injected secret. The guest proves itself later
 * with its own attestation report.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { parseQemuVersion, versionAtLeast } from '../qmp/version.js';
import { optPath, pushControlSockets, u32, type QemuArgvOptions, type SevAddressBits } from './argv.js';
import { VmError, VmLaunchError } from './errors.js';
import type { QmpClient } from '../qmp/client.js';
import { parseSevInfo, type SnpGuestInfo } from '../qmp/sev-info.js';

/** An SNP launch configuration QEMU or the firmware would refuse, or a QEMU that cannot launch SNP guests. */
export class VmSnpError extends VmError {
  constructor(code: string, message: string) {
    super(code, message);
  }
}

/** SNP guest policy bits (snp-launch.md §3.3; SNP ABI GUEST_POLICY). */
export const SNP_POLICY = {
  SMT: 1n << 16n,
  /** Reserved, must be 1. */
  RESERVED_1: 1n << 17n,
  MIGRATE_MA: 1n << 18n,
  DEBUG: 1n << 19n,
  SINGLE_SOCKET: 1n << 20n,
  CXL_ALLOW: 1n << 21n,
  MEM_AES_256_XTS: 1n << 22n,
  RAPL_DIS: 1n << 23n,
  CIPHERTEXT_HIDING: 1n << 24n,
  PAGE_SWAP_DISABLE: 1n << 25n,
} as const;

/** Bits 0..25 are defined; everything above must be zero. */
const SNP_POLICY_DEFINED = (1n << 26n) - 1n;

/** QEMU's and sev-snp-measure's default SNP policy: SMT allowed, reserved bit 17. */
export const DEFAULT_SNP_POLICY = 0x30000n;

/** The first QEMU release with `sev-snp-guest` (and the `query-sev` union with `sev-type`). */
export const MIN_SNP_QEMU = '9.1';

/** Decoded SNP guest policy. */
export interface SnpPolicyFields {
  abiMajor: number;
  abiMinor: number;
  smt: boolean;
  migrateMa: boolean;
  debug: boolean;
  singleSocket: boolean;
}

/**
 * The policy as a u64 after the checks the firmware makes at SNP_LAUNCH_START:
 * an integer in 0..2^64-1, reserved bit 17 set, no bit above 25. With `platformApi`
 * also the ABI minimum (bits 15:0) against the firmware's SNP API version.
 * Throws VmSnpError (ERR_VM_SNP_POLICY).
 */
export function checkSnpPolicy(policy: bigint | number, platformApi?: { major: number; minor: number }): bigint {
  let p: bigint;
  if (typeof policy === 'bigint') p = policy;
  else if (Number.isSafeInteger(policy)) p = BigInt(policy);
  else throw new VmSnpError('ERR_VM_SNP_POLICY', `SNP policy must be an integer, got ${policy}`);
  if (p < 0n || p >= 1n << 64n) throw new VmSnpError('ERR_VM_SNP_POLICY', `SNP policy must be a u64, got ${p}`);
  const hex = `0x${p.toString(16)}`;
  if ((p & SNP_POLICY.RESERVED_1) === 0n)
    throw new VmSnpError('ERR_VM_SNP_POLICY', `SNP policy ${hex}: reserved bit 17 must be 1 (the firmware refuses it; e.g. 0x30000)`);
  if ((p & ~SNP_POLICY_DEFINED) !== 0n) throw new VmSnpError('ERR_VM_SNP_POLICY', `SNP policy ${hex}: bits above 25 are reserved and must be 0`);
  if (platformApi) {
    const f = snpPolicyFields(p);
    if (f.abiMajor > platformApi.major || (f.abiMajor === platformApi.major && f.abiMinor > platformApi.minor)) {
      throw new VmSnpError(
        'ERR_VM_SNP_POLICY',
        `SNP policy ${hex} asks for firmware ABI >= ${f.abiMajor}.${f.abiMinor}, the platform has ${platformApi.major}.${platformApi.minor}`,
      );
    }
  }
  return p;
}

/** The named fields of an SNP policy (no checks; see checkSnpPolicy). */
export function snpPolicyFields(p: bigint): SnpPolicyFields {
  return {
    abiMinor: Number(p & 0xffn),
    abiMajor: Number((p >> 8n) & 0xffn),
    smt: (p & SNP_POLICY.SMT) !== 0n,
    migrateMa: (p & SNP_POLICY.MIGRATE_MA) !== 0n,
    debug: (p & SNP_POLICY.DEBUG) !== 0n,
    singleSocket: (p & SNP_POLICY.SINGLE_SOCKET) !== 0n,
  };
}

/** Size of the ID block QEMU's `id-block=` takes (snp-launch.md §2.2). */
export const SNP_ID_BLOCK_LEN = 96;
/** Size of the ID authentication structure (`id-auth=`; KVM copies a whole page). */
export const SNP_ID_AUTH_LEN = 4096;
/** Size of `host-data=`, carried verbatim into the report's HOST_DATA. */
export const SNP_HOST_DATA_LEN = 32;

/** The `sev-snp-guest` object (QEMU >= 9.1 qapi/qom.json SevSnpGuestProperties). */
export interface SnpGuestArgs {
  /** SNP guest policy (u64); default 0x30000. */
  policy?: bigint | number;
  /** CPUID 0x8000001F EBX[5:0] of this host. */
  cbitpos: number;
  /** 1..63 (QEMU checks the range only). */
  reducedPhysBits: number;
  /** ID block: raw 96 bytes, or their base64. */
  idBlock?: Buffer | string;
  /** ID authentication structure: raw 4096 bytes, or their base64. Needs idBlock. */
  idAuth?: Buffer | string;
  /** The ID auth block carries an author key signature. Needs idAuth. */
  authorKeyEnabled?: boolean;
  /** 32 bytes the report carries as HOST_DATA (not measured): raw, or base64. */
  hostData?: Buffer | string;
  /** Measured direct boot: QEMU fills the firmware's SNP_KERNEL_HASHES page. */
  kernelHashes?: boolean;
  /** QOM id; aleph uses sev0. */
  id?: string;
}

/** Strict base64 (standard alphabet, padding required as QEMU's g_base64_decode output length implies). */
function strictBase64(s: string): Buffer | undefined {
  const t = s.trim();
  if (t.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(t)) return undefined;
  return Buffer.from(t, 'base64');
}

/** A blob property as QEMU takes it: base64 of exactly `len` bytes. Throws VmSnpError. */
function blobProp(v: Buffer | string, len: number, name: string, code: string): string {
  const raw = Buffer.isBuffer(v) ? v : strictBase64(v);
  if (!raw) throw new VmSnpError(code, `SNP ${name} is not valid base64`);
  if (raw.length !== len) throw new VmSnpError(code, `SNP ${name} must be ${len} bytes, got ${raw.length}`);
  return raw.toString('base64');
}

const QOM_ID_RE = /^[A-Za-z][A-Za-z0-9._-]{0,63}$/;

/**
 * The `-object sev-snp-guest,...` value, properties in aleph's order (id, cbitpos,
 * reduced-phys-bits, kernel-hashes, policy) and then the ID block ones. An ID block
 * whose POLICY field differs from the launch policy is refused here: the firmware
 * would only say so at LAUNCH_FINISH. Throws VmSnpError.
 */
export function snpGuestObject(s: SnpGuestArgs): string {
  const id = s.id ?? 'sev0';
  if (!QOM_ID_RE.test(id)) throw new VmSnpError('ERR_VM_SNP_ARGV', `QOM id ${JSON.stringify(id)} must be a letter then up to 63 of [A-Za-z0-9._-]`);
  const policy = checkSnpPolicy(s.policy ?? DEFAULT_SNP_POLICY);
  if (!Number.isInteger(s.cbitpos) || s.cbitpos < 1 || s.cbitpos > 63) throw new VmSnpError('ERR_VM_SNP_ARGV', `cbitpos must be 1..63, got ${s.cbitpos}`);
  if (!Number.isInteger(s.reducedPhysBits) || s.reducedPhysBits < 1 || s.reducedPhysBits > 63) {
    throw new VmSnpError('ERR_VM_SNP_ARGV', `reduced-phys-bits must be 1..63 (QEMU refuses anything else), got ${s.reducedPhysBits}`);
  }
  let o = `sev-snp-guest,id=${id},cbitpos=${s.cbitpos},reduced-phys-bits=${s.reducedPhysBits}`;
  if (s.kernelHashes) o += ',kernel-hashes=on';
  o += `,policy=0x${policy.toString(16)}`;
  if (s.idAuth !== undefined && s.idBlock === undefined) throw new VmSnpError('ERR_VM_SNP_ID_BLOCK', 'SNP id-auth given without id-block');
  if (s.authorKeyEnabled && s.idAuth === undefined)
    throw new VmSnpError('ERR_VM_SNP_ID_BLOCK', 'SNP author-key-enabled needs id-auth (the author key signature lives there)');
  if (s.idBlock !== undefined) {
    const block = blobProp(s.idBlock, SNP_ID_BLOCK_LEN, 'id-block', 'ERR_VM_SNP_ID_BLOCK');
    // ID block layout (snp-launch.md §2.1): VERSION u32 @0x50 = 1, POLICY u64 @0x58 = the launch policy.
    const raw = Buffer.from(block, 'base64');
    if (raw.readUInt32LE(0x50) !== 1) throw new VmSnpError('ERR_VM_SNP_ID_BLOCK', `SNP id-block version is ${raw.readUInt32LE(0x50)}, expected 1`);
    const blockPolicy = raw.readBigUInt64LE(0x58);
    if (blockPolicy !== policy) {
      throw new VmSnpError(
        'ERR_VM_SNP_ID_BLOCK',
        `SNP id-block was made for policy 0x${blockPolicy.toString(16)}, the launch policy is 0x${policy.toString(16)} (LAUNCH_FINISH would fail)`,
      );
    }
    if (s.idAuth === undefined) throw new VmSnpError('ERR_VM_SNP_ID_BLOCK', 'SNP id-block given without id-auth (the firmware checks its signature)');
    o += `,id-block=${block},id-auth=${blobProp(s.idAuth, SNP_ID_AUTH_LEN, 'id-auth', 'ERR_VM_SNP_ID_BLOCK')}`;
    if (s.authorKeyEnabled) o += ',author-key-enabled=on';
  }
  if (s.hostData !== undefined) o += `,host-data=${blobProp(s.hostData, SNP_HOST_DATA_LEN, 'host-data', 'ERR_VM_SNP_HOST_DATA')}`;
  return o;
}

/** What a VmSpec says about an SNP guest; cbitpos and reduced-phys-bits come from the host. */
export type VmSnpSpec = Omit<SnpGuestArgs, 'cbitpos' | 'reducedPhysBits' | 'id'>;

/** The command line of an SNP guest; the SEV-only options (`sev`, pflash) do not apply. */
export interface SnpQemuArgvOptions extends Omit<QemuArgvOptions, 'sev'> {
  snp: SnpGuestArgs;
  /** Root disk; aleph attaches it read-only raw (dm-verity protects it). */
  image?: { path: string; format?: string; readOnly?: boolean };
  /** id of the memfd memory backend (aleph: ram1). */
  memoryBackendId?: string;
  /** User networking with one TCP port forwarded from 127.0.0.1 on the host into the guest (instead of a tap). */
  hostForward?: { hostPort: number; guestPort: number };
}

/** A TCP port as QEMU's hostfwd rule takes it: 1..65535. Throws VmSnpError. */
function tcpPort(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 1 || v > 65535) throw new VmSnpError('ERR_VM_SNP_ARGV', `${what} must be a TCP port (1..65535), got ${v}`);
  return v;
}

/**
 * The `-netdev` value of `hostForward`: user networking (slirp) with one rule, bound to the host's
 * loopback only, so the guest port is reachable from this host (the CRN's forwarder) and nowhere else.
 * QEMU 7.2 and 9.x parse it the same (`hostfwd=[tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport`).
 */
export function hostForwardNetdev(f: { hostPort: number; guestPort: number }, id = 'net0'): string {
  return `user,id=${id},hostfwd=tcp:127.0.0.1:${tcpPort(f.hostPort, 'host forward port')}-:${tcpPort(f.guestPort, 'guest port')}`;
}

/**
 * QEMU >= 9.1 argv for an SNP guest in aleph-vm's `build_snp_argv` order: direct boot
 * first, no -S (nothing to do before the guest runs), `-machine ...,confidential-guest-support=,
 * memory-backend=`, a shared memfd backend the size of -m, the sev-snp-guest object, and
 * the firmware as `-bios` (pflash has no read-only memslots under SNP: AMDSEV#236).
 * Throws VmSnpError / InputError.
 */
export function buildSnpQemuArgv(o: SnpQemuArgvOptions): string[] {
  const a: string[] = [o.qemu];
  a.push(...(o.accel === 'tcg' ? ['-accel', 'tcg'] : ['-enable-kvm']));
  const memMb = u32(o.memMb, 'memory (MiB)');
  if (memMb === 0) throw new VmSnpError('ERR_VM_SNP_ARGV', 'memory (MiB) must be at least 1');
  a.push('-m', String(memMb), '-smp', String(u32(o.vcpus, 'vCPU count')));
  if (o.kernel) a.push('-kernel', optPath(o.kernel, 'kernel'));
  if (o.initrd) a.push('-initrd', optPath(o.initrd, 'initrd'));
  if (o.append !== undefined) a.push('-append', o.append);
  if (o.image) {
    const ro = o.image.readOnly ?? true;
    a.push('-drive', `file=${optPath(o.image.path, 'disk image')},format=${o.image.format ?? 'raw'},if=virtio,readonly=${ro ? 'on' : 'off'},media=disk`);
  }
  for (const v of o.hostVolumes ?? [])
    a.push('-drive', `file=${optPath(v.path, 'host volume')},format=raw,readonly=${v.readOnly ? 'on' : 'off'},media=disk,if=virtio`);
  a.push('-display', 'none', '--no-reboot');
  pushControlSockets(a, o);
  a.push('-serial', 'stdio', '-nographic');
  if (o.tapInterface && o.hostForward) throw new VmSnpError('ERR_VM_SNP_ARGV', 'give a tap interface or a host forward, not both (one guest NIC)');
  if (o.tapInterface)
    a.push('-device', 'virtio-net-pci,netdev=net0', '-netdev', `tap,id=net0,ifname=${optPath(o.tapInterface, 'tap interface')},script=no,downscript=no`);
  if (o.hostForward) a.push('-device', 'virtio-net-pci,netdev=net0', '-netdev', hostForwardNetdev(o.hostForward));
  if (o.cloudInitDrive) a.push('-drive', `file=${optPath(o.cloudInitDrive, 'cloud-init drive')},media=cdrom,readonly=on,if=virtio`);
  // SNP VMSAs carry the vCPU signature: a fixed model keeps the launch digest predictable (aleph: EPYC-v4).
  a.push('-cpu', o.cpu ?? 'EPYC-v4');
  const mem = o.memoryBackendId ?? 'ram1';
  if (!QOM_ID_RE.test(mem)) throw new VmSnpError('ERR_VM_SNP_ARGV', `memory backend id ${JSON.stringify(mem)} is not a QOM id`);
  const snpObject = snpGuestObject(o.snp);
  a.push('-machine', `${o.machine ?? 'q35'},confidential-guest-support=${o.snp.id ?? 'sev0'},memory-backend=${mem},vmport=off`);
  a.push('-object', `memory-backend-memfd,id=${mem},size=${memMb}M,share=true`);
  a.push('-object', snpObject);
  a.push('-nodefaults', '-bios', optPath(o.firmware, 'firmware'));
  if (o.gpus && o.gpus.length) {
    for (const g of o.gpus) a.push('-device', `vfio-pci,host=${optPath(g.pciHost, 'GPU')},rombar=0${g.xVga ? ',x-vga=on' : ''}`);
  }
  if (o.name) a.push('-name', optPath(o.name, 'VM name'));
  if (o.extra) a.push(...o.extra);
  return a;
}

/** aleph-vm's controller JSON for an SNP VM (`sev_snp: true`), snake_case as on disk. */
export interface AlephSnpConfig {
  qemu_bin_path: string;
  image_path: string;
  monitor_socket_path: string;
  qmp_socket_path: string;
  qga_socket_path: string | null;
  vcpu_count: number;
  mem_size_mb: number;
  interface_name?: string | null;
  host_volumes: Array<{ mount?: string; path_on_host: string; read_only: boolean }>;
  gpus: Array<{ pci_host: string; supports_x_vga: boolean }>;
  sev_snp: true;
  ovmf_path: string;
  sev_policy: number;
  kernel_path: string;
  initrd_path: string;
  kernel_cmdline: string;
}

/** The argv aleph-vm's supervisor-controller would exec for this SNP config on a host with these CPUID values. */
export function alephSnpArgv(c: AlephSnpConfig, host: SevAddressBits): string[] {
  return buildSnpQemuArgv({
    qemu: c.qemu_bin_path,
    memMb: c.mem_size_mb,
    vcpus: c.vcpu_count,
    firmware: c.ovmf_path,
    kernel: c.kernel_path,
    initrd: c.initrd_path,
    append: c.kernel_cmdline,
    image: { path: c.image_path, format: 'raw', readOnly: true },
    hostVolumes: c.host_volumes.map((v) => ({ path: v.path_on_host, readOnly: v.read_only })),
    monitorSocket: c.monitor_socket_path,
    qmpSocket: c.qmp_socket_path,
    qgaSocket: c.qga_socket_path ?? undefined,
    tapInterface: c.interface_name ?? undefined,
    gpus: c.gpus.map((g) => ({ pciHost: g.pci_host, xVga: g.supports_x_vga })),
    snp: { policy: c.sev_policy, cbitpos: host.cbitpos, reducedPhysBits: host.reducedPhysBits, kernelHashes: true },
  });
}

// ── QEMU capability ─────────────────────────────────────────────────────────

/**
 * Refuses a QEMU version that has no `sev-snp-guest` (< 9.1, e.g. Debian bookworm's 7.2)
 * with one line naming what was found and what is needed. `version` is "M.m[.u]" or null
 * (not determined). Throws VmSnpError (ERR_VM_SNP_QEMU).
 */
export function requireSnpQemu(version: string | null, qemu: string, source = '-version'): void {
  if (version === null)
    throw new VmSnpError(
      'ERR_VM_SNP_QEMU',
      `cannot tell the version of QEMU ${qemu} (${source} printed no "QEMU emulator version"); SEV-SNP guests need QEMU >= ${MIN_SNP_QEMU}`,
    );
  if (!versionAtLeast(version, MIN_SNP_QEMU)) {
    throw new VmSnpError('ERR_VM_SNP_QEMU', `QEMU ${version} (${qemu}) cannot launch SEV-SNP guests: the sev-snp-guest object needs QEMU >= ${MIN_SNP_QEMU}`);
  }
}

/** `{major, minor, micro}` of a QMP greeting as "M.m.u". */
export function greetingVersion(g: { QMP: { version: { qemu: { major: number; minor: number; micro: number } } } }): string | null {
  const q = g.QMP?.version?.qemu;
  const ok = (n: unknown) => Number.isInteger(n) && (n as number) >= 0 && (n as number) < 1000;
  return q && ok(q.major) && ok(q.minor) && ok(q.micro) ? `${q.major}.${q.minor}.${q.micro}` : null;
}

/** `-version` answers, per binary identity (path, inode, size, mtime): a CRN launches many VMs with one QEMU. */
const versions = new Map<string, { stamp: string; version: Promise<string | null> }>();

/**
 * The version `qemu -version` prints ("9.2.0"), or null when it prints none. Runs the
 * binary with `env` (the simulator's wrapper answers for the QEMU it plays) within
 * `timeoutMs`; remembered while the binary is unchanged. Throws VmSnpError when it
 * cannot be run.
 */
export async function qemuVersion(qemu: string, opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<string | null> {
  // No env given: QEMU inherits this process's (execFile's default).
  const env = opts.env;
  let stamp = '';
  try {
    const st = await fs.promises.stat(qemu);
    stamp = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${env?.SEVKIT_SIM_QEMU_VERSION ?? ''}`;
  } catch {
    /* a bare name found on PATH: not cached */
  }
  const hit = stamp ? versions.get(qemu) : undefined;
  if (hit && hit.stamp === stamp) return hit.version;
  const version = new Promise<string | null>((resolve, reject) => {
    execFile(qemu, ['-version'], { ...(env ? { env } : {}), timeout: opts.timeoutMs ?? 10_000, encoding: 'utf8', maxBuffer: 64 * 1024 }, (err, stdout) => {
      const v = parseQemuVersion(stdout ?? '');
      if (v) return resolve(v);
      if (err) {
        const code = (err as NodeJS.ErrnoException).code;
        return reject(new VmSnpError('ERR_VM_SNP_QEMU', `cannot run QEMU ${qemu} -version: ${typeof code === 'string' ? code : err.message.split('\n')[0]}`));
      }
      resolve(null);
    });
  });
  if (stamp) {
    versions.set(qemu, { stamp, version });
    version.catch(() => versions.delete(qemu));
  }
  return version;
}

/**
 * What the supervisor checks once an SNP guest's QEMU answers QMP: the greeting's
 * version (>= 9.1), that it runs (no -S: nothing waits for the host), and that
 * `query-sev` names an enabled SEV-SNP guest. Throws VmSnpError / VmLaunchError /
 * QmpProtocolError.
 */
export async function checkSnpGuest(qmp: QmpClient, name: string, qemu: string): Promise<SnpGuestInfo> {
  requireSnpQemu(greetingVersion(qmp.greeting), qemu, 'its QMP greeting');
  const status = await qmp.queryStatus();
  if (status.status !== 'running') throw new VmLaunchError(`VM ${name}: QEMU is ${status.status}, expected an SNP guest to be running`);
  const info = parseSevInfo(await qmp.execute<Record<string, unknown>>('query-sev'));
  if (info.sevType !== 'sev-snp') throw new VmLaunchError(`VM ${name}: QEMU reports an ${info.sevType} guest, not SEV-SNP`, 'ERR_VM_NO_SEV');
  if (!info.enabled) throw new VmLaunchError(`VM ${name}: QEMU reports SEV-SNP not enabled for this guest`, 'ERR_VM_NO_SEV');
  return info;
}
