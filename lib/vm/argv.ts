/**
 * QEMU command lines for confidential VMs, in the exact order and spelling
 * aleph-vm's `QemuConfidentialVM.start` uses (pinned by its conformance
 * fixtures), so a CRN can switch to sevkit without changing what runs.
 */
import { InputError } from '../errors.js';

/** The sev-guest object (QEMU target/i386/sev.c; shared/specs/kernel-qemu.md §4.1). */
export interface SevGuestArgs {
  /** Guest policy (u32); printed like Python's hex(): 0x1, 0x5, 0x0. */
  policy: number;
  /** CPUID 0x8000001F EBX[5:0] of this host. */
  cbitpos: number;
  /** CPUID 0x8000001F EBX[11:6] of this host (aleph passes the CPUID value). */
  reducedPhysBits: number;
  /** File holding the base64 of the guest owner's DH certificate. */
  dhCertFile?: string;
  /** File holding the base64 of the launch session blob. */
  sessionFile?: string;
  /** Measured direct boot: QEMU writes and measures the kernel/initrd/cmdline hashes table. */
  kernelHashes?: boolean;
  /** QOM id; aleph uses sev0. */
  id?: string;
}

/**
 * Everything buildQemuArgv lays out: QEMU binary, memory (MiB), vCPUs, firmware, disks, sockets, SEV guest
 * object, devices, direct boot.
 */
export interface QemuArgvOptions {
  qemu: string;
  /** 'kvm' → -enable-kvm (aleph); 'tcg' → -accel tcg (tests, hosts without KVM). */
  accel?: 'kvm' | 'tcg';
  memMb: number;
  vcpus: number;
  /** Firmware image, attached as read-only pflash unit 0 (the only measured-safe layout). */
  firmware: string;
  /** Root disk (aleph: a qcow2 overlay). */
  image?: { path: string; format?: string };
  monitorSocket?: string;
  qmpSocket: string;
  qgaSocket?: string;
  sev?: SevGuestArgs;
  machine?: string;
  /** -cpu value; aleph pins host with host-phys-bits-limit=0x28. */
  cpu?: string;
  tapInterface?: string;
  cloudInitDrive?: string;
  hostVolumes?: Array<{ path: string; readOnly: boolean }>;
  gpus?: Array<{ pciHost: string; xVga?: boolean }>;
  /** Appended after aleph's layout: -name, direct boot, anything else. */
  name?: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  extra?: string[];
}

/** Python's hex() for a non-negative integer. */
export function pyHex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** QEMU option values separate properties with ','; a path containing one would be split. */
export function optPath(p: string, what: string): string {
  if (p.includes(',')) throw new InputError(`${what} ${JSON.stringify(p)} contains a comma, which QEMU would split as an option separator`, 'ERR_VM_ARGV');
  return p;
}

/** A u32 argument (memory, vCPUs, policy), else InputError. */
export function u32(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new InputError(`${what} must be a u32, got ${n}`, 'ERR_VM_ARGV');
  return n;
}

/**
 * The `-object sev-guest,...` value (policy, cbitpos, reduced-phys-bits, session files, kernel-hashes); throws
 * InputError (ERR_VM_ARGV) on an out-of-range value or a path containing a comma.
 */
export function sevGuestObject(s: SevGuestArgs): string {
  u32(s.policy, 'SEV policy');
  if (!Number.isInteger(s.cbitpos) || s.cbitpos < 1 || s.cbitpos > 63) throw new InputError(`cbitpos must be 1..63, got ${s.cbitpos}`, 'ERR_VM_ARGV');
  if (!Number.isInteger(s.reducedPhysBits) || s.reducedPhysBits < 1 || s.reducedPhysBits > 63) {
    throw new InputError(`reduced-phys-bits must be 1..63 (QEMU refuses anything else), got ${s.reducedPhysBits}`, 'ERR_VM_ARGV');
  }
  let o = `sev-guest,id=${s.id ?? 'sev0'},policy=${pyHex(s.policy)},cbitpos=${s.cbitpos},reduced-phys-bits=${s.reducedPhysBits}`;
  if (s.dhCertFile) o += `,dh-cert-file=${optPath(s.dhCertFile, 'dh-cert-file')}`;
  if (s.sessionFile) o += `,session-file=${optPath(s.sessionFile, 'session-file')}`;
  if (s.kernelHashes) o += ',kernel-hashes=on';
  return o;
}

/**
 * The QEMU argv (binary first) for a confidential VM in aleph-vm's layout; throws InputError (ERR_VM_ARGV) on an
 * out-of-range value or a path containing a comma.
 */
export function buildQemuArgv(o: QemuArgvOptions): string[] {
  const a: string[] = [o.qemu];
  a.push(...(o.accel === 'tcg' ? ['-accel', 'tcg'] : ['-enable-kvm']), '-nodefaults');
  a.push('-m', String(u32(o.memMb, 'memory (MiB)')), '-smp', String(u32(o.vcpus, 'vCPU count')));
  a.push('-drive', `if=pflash,format=raw,unit=0,file=${optPath(o.firmware, 'firmware')},readonly=on`);
  if (o.image) a.push('-drive', `file=${optPath(o.image.path, 'disk image')},media=disk,if=virtio,format=${o.image.format ?? 'qcow2'}`);
  a.push('-display', 'none', '--no-reboot');
  pushControlSockets(a, o);
  a.push('-serial', 'stdio', '-nographic', '-boot', 'order=c,reboot-timeout=1', '-S');
  const machine = o.machine ?? 'q35';
  if (o.sev) {
    a.push('-object', sevGuestObject(o.sev));
    a.push('-machine', `${machine},confidential-guest-support=${o.sev.id ?? 'sev0'}`);
  } else {
    a.push('-machine', machine);
  }
  const cpu = o.cpu ?? 'host,host-phys-bits-limit=0x28';
  a.push('-cpu', cpu);
  if (o.tapInterface)
    a.push('-device', 'virtio-net-pci,netdev=net0', '-netdev', `tap,id=net0,ifname=${optPath(o.tapInterface, 'tap interface')},script=no,downscript=no`);
  if (o.cloudInitDrive) a.push('-drive', `file=${optPath(o.cloudInitDrive, 'cloud-init drive')},media=cdrom,readonly=on,if=virtio`);
  for (const v of o.hostVolumes ?? [])
    a.push('-drive', `file=${optPath(v.path, 'host volume')},format=raw,readonly=${v.readOnly ? 'on' : 'off'},media=disk,if=virtio`);
  if (o.gpus && o.gpus.length) {
    // aleph repeats -cpu before the vfio devices (QEMU keeps the last one; both are identical).
    a.push('-cpu', cpu);
    for (const g of o.gpus) a.push('-device', `vfio-pci,host=${optPath(g.pciHost, 'GPU')},rombar=0${g.xVga ? ',x-vga=on' : ''}`);
  }
  if (o.name) a.push('-name', optPath(o.name, 'VM name'));
  if (o.kernel) a.push('-kernel', o.kernel);
  if (o.initrd) a.push('-initrd', o.initrd);
  if (o.append !== undefined) a.push('-append', o.append);
  if (o.extra) a.push(...o.extra);
  return a;
}

/** aleph-vm's QemuConfidentialVMConfiguration (controller JSON, snake_case as on disk). */
export interface AlephConfidentialConfig {
  qemu_bin_path: string;
  cloud_init_drive_path: string | null;
  image_path: string;
  monitor_socket_path: string;
  qmp_socket_path: string;
  qga_socket_path: string | null;
  vcpu_count: number;
  mem_size_mb: number;
  interface_name: string | null;
  host_volumes: Array<{ mount?: string; path_on_host: string; read_only: boolean }>;
  gpus: Array<{ pci_host: string; supports_x_vga: boolean }>;
  ovmf_path: string;
  sev_session_file: string;
  sev_dh_cert_file: string;
  sev_policy: number;
}

/**
 * This host's CPUID 0x8000001F values the sev-guest object needs (hostAddressBits reads them): the C-bit position
 * and the physical address bits lost to encryption, both in bits.
 */
export interface SevAddressBits {
  cbitpos: number;
  reducedPhysBits: number;
}

/** The argv aleph-vm would exec for this controller config on a host with these CPUID values. */
export function alephConfidentialArgv(c: AlephConfidentialConfig, host: SevAddressBits): string[] {
  return buildQemuArgv({
    qemu: c.qemu_bin_path,
    memMb: c.mem_size_mb,
    vcpus: c.vcpu_count,
    firmware: c.ovmf_path,
    image: { path: c.image_path, format: 'qcow2' },
    monitorSocket: c.monitor_socket_path,
    qmpSocket: c.qmp_socket_path,
    qgaSocket: c.qga_socket_path ?? undefined,
    sev: {
      policy: c.sev_policy,
      cbitpos: host.cbitpos,
      reducedPhysBits: host.reducedPhysBits,
      dhCertFile: c.sev_dh_cert_file,
      sessionFile: c.sev_session_file,
    },
    tapInterface: c.interface_name ?? undefined,
    cloudInitDrive: c.cloud_init_drive_path ?? undefined,
    hostVolumes: c.host_volumes.map((v) => ({ path: v.path_on_host, readOnly: v.read_only })),
    gpus: c.gpus.map((g) => ({ pciHost: g.pci_host, xVga: g.supports_x_vga })),
  });
}

/**
 * aleph's control sockets, in aleph's order: the HMP monitor (when given), QMP, and the guest agent's
 * virtio-serial channel (when given). Shared by the SEV and SNP command lines.
 */
export function pushControlSockets(a: string[], o: { monitorSocket?: string | undefined; qmpSocket: string; qgaSocket?: string | undefined }): void {
  if (o.monitorSocket) a.push('-monitor', `unix:${optPath(o.monitorSocket, 'monitor socket')},server,nowait`);
  a.push('-qmp', `unix:${optPath(o.qmpSocket, 'QMP socket')},server,nowait`);
  if (o.qgaSocket) {
    a.push('-chardev', `socket,path=${optPath(o.qgaSocket, 'guest agent socket')},server=on,wait=off,id=qga0`);
    a.push('-device', 'virtio-serial', '-device', 'virtserialport,chardev=qga0,name=org.qemu.guest_agent.0');
  }
}
