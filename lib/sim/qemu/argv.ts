/**
 * Reads a QEMU command line the way QEMU does (options, QemuOpts-style
 * "key=value,key=value" with ",," as an escaped comma), finds the SEV pieces
 * (the sev-guest object and the machine property naming it), and rewrites the
 * line for a real QEMU that knows nothing about SEV.
 */
export class QemuArgvError extends Error {}

/** Options that take no argument (everything else takes exactly one). */
const FLAGS = new Set([
  'S',
  'nodefaults',
  'nographic',
  'enable-kvm',
  'no-reboot',
  'no-shutdown',
  'snapshot',
  'no-user-config',
  'no-hpet',
  'no-acpi',
  'full-screen',
  's',
  'version',
  'help',
  'h',
  'daemonize',
  'no-fd-bootchk',
  'win2k-hack',
  'no-quit',
  'preconfig',
  'only-migratable',
  'enable-fips',
  'semihosting',
  'old-param',
  'alt-grab',
  'ctrl-grab',
  'nodefconfig',
]);

export interface QemuOpt {
  name: string;
  value?: string;
}

/** Splits "a,b=c,,d" into [["", "a"], ["b", "c,d"]] (the first bare word is the implied key). */
export function splitProps(value: string): Array<[string, string]> {
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (ch === ',') {
      if (value[i + 1] === ',') {
        cur += ',';
        i++;
        continue;
      }
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  return parts.map((p) => {
    const eq = p.indexOf('=');
    return eq < 0 ? ['', p] : [p.slice(0, eq), p.slice(eq + 1)];
  });
}

export function joinProps(props: Array<[string, string]>): string {
  return props.map(([k, v]) => (k ? `${k}=${v.replace(/,/g, ',,')}` : v.replace(/,/g, ',,'))).join(',');
}

export function parseOpts(args: string[]): QemuOpt[] {
  const out: QemuOpt[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('-') || a === '-') {
      // A bare word is the disk image (-hda); keep it as such.
      out.push({ name: 'hda', value: a });
      continue;
    }
    const name = a.replace(/^--?/, '');
    if (FLAGS.has(name)) {
      out.push({ name });
      continue;
    }
    if (i + 1 >= args.length) throw new QemuArgvError(`-${name}: requires an argument`);
    out.push({ name, value: args[++i] });
  }
  return out;
}

export function formatOpts(opts: QemuOpt[]): string[] {
  const out: string[] = [];
  for (const o of opts) {
    out.push(`-${o.name}`);
    if (o.value !== undefined) out.push(o.value);
  }
  return out;
}

export interface SevGuestConfig {
  id: string;
  policy: number;
  cbitpos: number | undefined;
  reducedPhysBits: number;
  dhCertFile?: string;
  sessionFile?: string;
  kernelHashes: boolean;
  handle: number;
  sevDevice: string;
}

/** The QEMU >= 9.1 sev-snp-guest object (qapi/qom.json SevSnpGuestProperties + SevCommonProperties). */
export interface SnpGuestConfig {
  id: string;
  /** u64; QEMU's default 0x30000. */
  policy: bigint;
  cbitpos: number | undefined;
  reducedPhysBits: number;
  kernelHashes: boolean;
  /** Decoded id-block (QEMU accepts exactly 96 bytes). */
  idBlock?: Buffer;
  /** Decoded id-auth (at most 4096 bytes; KVM copies 4096, zero-padded here). */
  idAuth?: Buffer;
  authorKeyEnabled: boolean;
  /** Decoded host-data (exactly 32 bytes). */
  hostData?: Buffer;
  /** guest-visible-workarounds (16 bytes). */
  gosvw?: Buffer;
  vcekDisabled: boolean;
  sevDevice: string;
}

export interface ParsedQemu {
  opts: QemuOpt[];
  sev?: SevGuestConfig;
  /** An SEV-SNP guest (only when the simulated QEMU is >= 9.1). */
  snp?: SnpGuestConfig;
  firmware?: string;
  /** Where `firmware` came from: the -drive option text (pflash) or -bios. */
  firmwareFrom?: { drive: string } | 'bios';
  vcpus: number;
  /** CPU model of the last -cpu (QEMU keeps the last), e.g. host, EPYC-v4. */
  cpuModel?: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  /** -name (or its guest= property). */
  name?: string;
  /** Paths of the UNIX QMP sockets (-qmp unix:PATH[,server...]). */
  qmpSockets: string[];
  startPaused: boolean;
  accel?: string;
}

/**
 * A uint32 QOM property from the command line as QEMU 7.2 reads it: keyval's
 * qemu_strtou64(str, NULL, 0, ...) (C base 0: "0x10" hex, "010" octal, a
 * leading "-" wraps modulo 2^64), then visit_type_uint32's range check.
 */
export function parseU32(v: string, what: string): number {
  const n = parseU64(v, what);
  if (n > 0xffffffffn) throw new QemuArgvError(`Parameter '${what}' expects uint32_t`);
  return Number(n);
}

/** A uint64 QOM property the same way (qemu_strtou64, base 0, "-" wrapping modulo 2^64). */
export function parseU64(v: string, what: string): bigint {
  const m = /^\s*(-?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(v);
  if (!m) throw new QemuArgvError(`Parameter '${what}' expects integer`);
  const digits = m[2]!;
  let n = /^0[xX]/.test(digits) ? BigInt(digits) : digits.length > 1 && digits.startsWith('0') ? BigInt(`0o${digits.slice(1)}`) : BigInt(digits);
  if (n >= 1n << 64n) throw new QemuArgvError(`Parameter '${what}' expects integer`);
  if (m[1]) n = ((1n << 64n) - n) & ((1n << 64n) - 1n);
  return n;
}

/** qapi_bool_parse(): on/yes/true/y and off/no/false/n. */
function onOff(v: string, what: string): boolean {
  if (v === 'on' || v === 'yes' || v === 'true' || v === 'y') return true;
  if (v === 'off' || v === 'no' || v === 'false' || v === 'n') return false;
  throw new QemuArgvError(`Parameter '${what}' expects 'on' or 'off'`);
}

/** The properties `qom-list-properties typename=sev-guest` lists on 7.2 (kernel-qemu.md §4.1), plus -object's own keys. */
const SEV_GUEST_PROPS = new Set([
  'qom-type',
  'id',
  'sev-device',
  'dh-cert-file',
  'session-file',
  'kernel-hashes',
  'handle',
  'policy',
  'reduced-phys-bits',
  'cbitpos',
]);

/** The properties of QEMU 9.1's sev-snp-guest (snp-launch.md §3.1), plus -object's own keys. */
const SEV_SNP_GUEST_PROPS = new Set([
  'qom-type',
  'id',
  'sev-device',
  'cbitpos',
  'reduced-phys-bits',
  'kernel-hashes',
  'policy',
  'guest-visible-workarounds',
  'id-block',
  'id-auth',
  'author-key-enabled',
  'host-data',
  'vcek-disabled',
]);

/** The first QEMU with sev-snp-guest. */
const SNP_QEMU = [9, 1];

/**
 * qbase64_decode() as QEMU's SNP setters call it: strict (unlike GLib's decoder used for the SEV
 * session files), an error for anything that is not base64 [hedge: error text].
 */
function qbase64(v: string, text: string): Buffer {
  if (v.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) throw new QemuArgvError(`-object ${text}: Base64 data contains invalid characters`);
  return Buffer.from(v, 'base64');
}

/** A sev-snp-guest's properties as QEMU 9.1's setters check them (their own error texts, the -object text as location). */
function snpGuestConfig(id: string, props: Map<string, string>, text: string): SnpGuestConfig {
  if (!props.has('reduced-phys-bits')) throw new QemuArgvError("-object sev-snp-guest: Parameter 'reduced-phys-bits' is missing");
  const blob = (k: string, check: (n: number) => string | undefined): Buffer | undefined => {
    const v = props.get(k);
    if (v === undefined) return undefined;
    const b = qbase64(v, text);
    const why = check(b.length);
    if (why) throw new QemuArgvError(`-object ${text}: ${why}`);
    return b;
  };
  const idAuth = blob('id-auth', (n) => (n > 4096 ? `parameter length:ID_AUTH ${n} exceeds max of 4096` : undefined));
  return {
    id,
    policy: props.has('policy') ? parseU64(props.get('policy')!, 'policy') : 0x30000n,
    cbitpos: props.has('cbitpos') ? parseU32(props.get('cbitpos')!, 'cbitpos') : undefined,
    reducedPhysBits: parseU32(props.get('reduced-phys-bits')!, 'reduced-phys-bits'),
    kernelHashes: props.has('kernel-hashes') ? onOff(props.get('kernel-hashes')!, 'kernel-hashes') : false,
    idBlock: blob('id-block', (n) => (n !== 96 ? `parameter length of ${n} not equal to 96` : undefined)),
    // KVM copies a whole 4096-byte page from id_auth_uaddr; QEMU's buffer is zero past what was given.
    idAuth: idAuth && Buffer.concat([idAuth, Buffer.alloc(4096 - idAuth.length)]),
    authorKeyEnabled: props.has('author-key-enabled') ? onOff(props.get('author-key-enabled')!, 'author-key-enabled') : false,
    hostData: blob('host-data', (n) => (n !== 32 ? `parameter length of ${n} not equal to 32` : undefined)),
    gosvw: blob('guest-visible-workarounds', (n) => (n !== 16 ? `parameter length of ${n} exceeds max of 16` : undefined)),
    vcekDisabled: props.has('vcek-disabled') ? onOff(props.get('vcek-disabled')!, 'vcek-disabled') : false,
    sevDevice: props.get('sev-device') ?? '/dev/sev',
  };
}

/** Options of parseQemuArgs. */
export interface ParseQemuOptions {
  /** The QEMU version the wrapper plays, "M.m[.u]"; below 9.1 (the default, Debian's 7.2) there is no sev-snp-guest. */
  qemuVersion?: string;
}

/**
 * The present vCPUs of a (merged) -smp, as hw/core/machine-smp.c smp_parse()
 * computes them since 6.2 (cores preferred over sockets): one VMSA is
 * measured per present vCPU.
 */
export function smpCpus(props: Map<string, string>, text: string): number {
  const num = (k: string): number => {
    const v = props.get(k);
    if (v === undefined) return 0;
    if (!/^[0-9]+$/.test(v)) throw new QemuArgvError(`-smp ${text}: Parameter '${k}' expects a number`);
    const n = Number(v);
    if (n === 0) throw new QemuArgvError('Invalid CPU topology: CPU topology parameters must be greater than zero');
    return n;
  };
  for (const k of props.keys()) {
    if (!['cpus', 'sockets', 'dies', 'clusters', 'cores', 'threads', 'maxcpus'].includes(k)) throw new QemuArgvError(`-smp ${text}: Invalid parameter '${k}'`);
  }
  let cpus = num('cpus');
  let sockets = num('sockets');
  const dies = num('dies') || 1;
  const clusters = num('clusters') || 1;
  let cores = num('cores');
  let threads = num('threads');
  let maxcpus = num('maxcpus');
  if (clusters > 1) throw new QemuArgvError("clusters not supported by this machine's CPU topology");
  if (cpus === 0 && maxcpus === 0) {
    sockets ||= 1;
    cores ||= 1;
    threads ||= 1;
  } else {
    maxcpus ||= cpus;
    if (cores === 0) {
      sockets ||= 1;
      threads ||= 1;
      cores = Math.floor(maxcpus / (sockets * dies * clusters * threads));
    } else if (sockets === 0) {
      threads ||= 1;
      sockets = Math.floor(maxcpus / (dies * clusters * cores * threads));
    }
    if (threads === 0) threads = Math.floor(maxcpus / (sockets * dies * clusters * cores));
  }
  const total = sockets * dies * clusters * cores * threads;
  maxcpus ||= total;
  cpus ||= maxcpus;
  const topo = `sockets (${sockets}) * dies (${dies}) * cores (${cores}) * threads (${threads})`;
  if (total !== maxcpus) throw new QemuArgvError(`Invalid CPU topology: product of the hierarchy must match maxcpus: ${topo} != maxcpus (${maxcpus})`);
  if (maxcpus < cpus)
    throw new QemuArgvError(`Invalid CPU topology: maxcpus must be equal to or greater than smp: ${topo} == maxcpus (${maxcpus}) < smp_cpus (${cpus})`);
  if (cpus < 1) throw new QemuArgvError(`Invalid -smp ${text}`);
  return cpus;
}

/**
 * Whether the QEMU version the wrapper plays ("M.m[.u]"; default Debian's 7.2) is >= 9.1: it has the
 * sev-snp-guest object, and its query-sev answers the SevInfo union tagged by `sev-type`.
 */
export function qemuHasSnp(version: string | undefined): boolean {
  const [vMajor, vMinor] = (version ?? '7.2.0').split('.').map(Number) as [number, number];
  return vMajor > SNP_QEMU[0]! || (vMajor === SNP_QEMU[0] && vMinor >= SNP_QEMU[1]!);
}

export function parseQemuArgs(args: string[], options: ParseQemuOptions = {}): ParsedQemu {
  const knowsSnp = qemuHasSnp(options.qemuVersion);
  const snpObjects = new Map<string, { props: Map<string, string>; text: string }>();
  const opts = parseOpts(args);
  const p: ParsedQemu = { opts, vcpus: 1, qmpSockets: [], startPaused: false };
  let cgsId: string | undefined;
  const objects = new Map<string, Map<string, string>>();
  const smp = new Map<string, string>();
  let smpText = '';
  for (const o of opts) {
    const v = o.value ?? '';
    switch (o.name) {
      case 'S':
        p.startPaused = true;
        break;
      case 'enable-kvm':
        p.accel = 'kvm';
        break;
      case 'accel':
        p.accel = splitProps(v)[0]?.[1] ?? v;
        break;
      case 'object': {
        const props = new Map(splitProps(v).map(([k, val]) => [k === '' ? 'qom-type' : k, val] as [string, string]));
        if (props.get('qom-type') === 'sev-guest') {
          const id = props.get('id');
          if (!id) throw new QemuArgvError(`-object ${v}: Parameter 'id' is missing`);
          // user_creatable_add_type() sets each property; one sev-guest lacks is refused.
          for (const k of props.keys()) if (!SEV_GUEST_PROPS.has(k)) throw new QemuArgvError(`-object ${v}: Property 'sev-guest.${k}' not found`);
          objects.set(id, props);
        } else if (props.get('qom-type') === 'sev-snp-guest') {
          // QEMU 7.2's QAPI enum ObjectType has no sev-snp-guest (the real 7.2's own text).
          if (!knowsSnp) throw new QemuArgvError(`-object ${v}: Parameter 'qom-type' does not accept value 'sev-snp-guest'`);
          const id = props.get('id');
          if (!id) throw new QemuArgvError(`-object ${v}: Parameter 'id' is missing`);
          for (const k of props.keys()) if (!SEV_SNP_GUEST_PROPS.has(k)) throw new QemuArgvError(`-object ${v}: Property 'sev-snp-guest.${k}' not found`);
          snpObjects.set(id, { props, text: v });
        }
        break;
      }
      case 'machine':
      case 'M':
        for (const [k, val] of splitProps(v)) {
          if (k === 'confidential-guest-support' || k === 'memory-encryption') cgsId = val;
          if (k === 'accel') p.accel = val.split(':')[0];
        }
        break;
      case 'drive': {
        const props = new Map(splitProps(v));
        if (props.get('if') === 'pflash' && (props.get('unit') ?? '0') === '0' && props.get('file') && p.firmware === undefined) {
          p.firmware = props.get('file');
          p.firmwareFrom = { drive: v };
        }
        break;
      }
      case 'bios':
        if (p.firmware === undefined) {
          p.firmware = v;
          p.firmwareFrom = 'bios';
        }
        break;
      case 'smp':
        // smp-opts merge: a later -smp overrides the keys it names.
        for (const [k, val] of splitProps(v)) smp.set(k === '' ? 'cpus' : k, val);
        smpText = v;
        break;
      case 'cpu':
        p.cpuModel = splitProps(v)[0]?.[1];
        break;
      case 'kernel':
        p.kernel = v;
        break;
      case 'initrd':
        p.initrd = v;
        break;
      case 'append':
        p.append = v;
        break;
      case 'name': {
        const props = splitProps(v);
        p.name = props.find(([k]) => k === '' || k === 'guest')?.[1];
        break;
      }
      case 'qmp': {
        const m = /^unix:(.*)$/.exec(v);
        if (!m) throw new QemuArgvError(`-qmp ${v}: only unix: sockets are supported by the simulator`);
        p.qmpSockets.push(splitProps(m[1]!)[0]![1]);
        break;
      }
      case 'daemonize':
        throw new QemuArgvError('-daemonize is not supported by the simulator');
      default:
        break;
    }
  }
  if (smp.size > 0) {
    p.vcpus = smpCpus(smp, smpText);
  }
  const snpObject = cgsId === undefined ? undefined : snpObjects.get(cgsId);
  if (cgsId !== undefined && snpObject) {
    p.snp = snpGuestConfig(cgsId, snpObject.props, snpObject.text);
  } else if (cgsId !== undefined) {
    const props = objects.get(cgsId);
    if (!props) throw new QemuArgvError(`Property 'confidential-guest-support' of the machine: object '${cgsId}' not found`);
    if (!props.has('reduced-phys-bits')) throw new QemuArgvError("-object sev-guest: Parameter 'reduced-phys-bits' is missing");
    p.sev = {
      id: cgsId,
      policy: props.has('policy') ? parseU32(props.get('policy')!, 'policy') : 1,
      cbitpos: props.has('cbitpos') ? parseU32(props.get('cbitpos')!, 'cbitpos') : undefined,
      reducedPhysBits: parseU32(props.get('reduced-phys-bits')!, 'reduced-phys-bits'),
      dhCertFile: props.get('dh-cert-file'),
      sessionFile: props.get('session-file'),
      kernelHashes: props.has('kernel-hashes') ? onOff(props.get('kernel-hashes')!, 'kernel-hashes') : false,
      handle: props.has('handle') ? parseU32(props.get('handle')!, 'handle') : 0,
      sevDevice: props.get('sev-device') ?? '/dev/sev',
    };
  }
  return p;
}

/**
 * CPU models of QEMU >= 9.1 that Debian's 7.2 does not know, and the 7.2 model the real QEMU runs
 * instead when the wrapper plays a newer QEMU for an SNP guest. Only the emulation changes: the
 * wrapper measures the VMSAs with the model given.
 */
export const CPU_MODEL_STANDIN_7_2: Readonly<Record<string, string>> = {
  'EPYC-v4': 'EPYC-v3',
  'EPYC-v5': 'EPYC-v3',
  'EPYC-Rome-v3': 'EPYC-Rome-v2',
  'EPYC-Rome-v4': 'EPYC-Rome-v2',
  'EPYC-Milan-v2': 'EPYC-Milan-v1',
  'EPYC-Genoa': 'EPYC-Milan-v1',
  'EPYC-Genoa-v1': 'EPYC-Milan-v1',
  'EPYC-Turin': 'EPYC-Milan-v1',
};

/**
 * The command line for the real QEMU: no sev-guest object, no machine
 * property naming it, QMP on `privateQmp` (the wrapper serves the caller's
 * sockets itself), and TCG instead of KVM when asked.
 */
export function rewriteForRealQemu(p: ParsedQemu, privateQmp: string, accel: 'kvm' | 'tcg'): string[] {
  const out: QemuOpt[] = [];
  let qmpDone = false;
  for (const o of p.opts) {
    const v = o.value ?? '';
    if (o.name === 'object' && p.sev && splitProps(v)[0]?.[1] === 'sev-guest') {
      const id = splitProps(v).find(([k]) => k === 'id')?.[1];
      if (id === p.sev.id) continue;
    }
    if (o.name === 'object' && p.snp && splitProps(v)[0]?.[1] === 'sev-snp-guest') {
      const id = splitProps(v).find(([k]) => k === 'id')?.[1];
      if (id === p.snp.id) continue;
    }
    if (o.name === 'machine' || o.name === 'M') {
      const props = splitProps(v).filter(([k]) => k !== 'confidential-guest-support' && k !== 'memory-encryption' && !(accel === 'tcg' && k === 'accel'));
      out.push({ name: o.name, value: joinProps(props) });
      continue;
    }
    if (o.name === 'cpu' && p.snp) {
      const props = splitProps(v);
      const standin = props[0]?.[0] === '' ? CPU_MODEL_STANDIN_7_2[props[0][1]] : undefined;
      if (standin) {
        props[0] = ['', standin];
        out.push({ name: 'cpu', value: joinProps(props) });
        continue;
      }
    }
    if (o.name === 'qmp') {
      if (!qmpDone) out.push({ name: 'qmp', value: `unix:${privateQmp},server=on,wait=off` });
      qmpDone = true;
      continue;
    }
    if (accel === 'tcg') {
      if (o.name === 'enable-kvm') {
        out.push({ name: 'accel', value: 'tcg' });
        continue;
      }
      if (o.name === 'accel') {
        out.push({ name: 'accel', value: 'tcg' });
        continue;
      }
      if (o.name === 'cpu') {
        const props = splitProps(v);
        // TCG has no "host" model; "max" is the closest stand-in.
        if (props[0]?.[0] === '' && props[0][1] === 'host') props[0] = ['', 'max'];
        out.push({ name: 'cpu', value: joinProps(props) });
        continue;
      }
    }
    out.push(o);
  }
  if (!qmpDone) out.push({ name: 'qmp', value: `unix:${privateQmp},server=on,wait=off` });
  return formatOpts(out);
}
