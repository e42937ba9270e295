/**
 * The SEV guest policy (SEV API §3 "Guest Policy"), a 32-bit value the owner
 * chooses and the firmware enforces:
 *   bit 0 NODBG, 1 NOKS, 2 ES, 3 NOSEND, 4 DOMAIN, 5 SEV, 6..15 reserved,
 *   bits 16..23 API_MAJOR, 24..31 API_MINOR (minimum firmware version).
 */
import { PolicyError } from './errors.js';

/** The SEV guest policy's flag bits (bits 0..5: NODBG, NOKS, ES, NOSEND, DOMAIN, SEV). */
export const POLICY_FLAGS = {
  NODBG: 0x01,
  NOKS: 0x02,
  ES: 0x04,
  NOSEND: 0x08,
  DOMAIN: 0x10,
  SEV: 0x20,
} as const;
/** A policy flag name, a key of POLICY_FLAGS. */
export type PolicyFlagName = keyof typeof POLICY_FLAGS;

const FLAG_TEXT: Record<PolicyFlagName, string> = {
  NODBG: 'debugging of the guest is disallowed',
  NOKS: 'sharing keys with other guests is disallowed',
  ES: 'SEV-ES is required (encrypted register state)',
  NOSEND: 'sending the guest to another platform is disallowed',
  DOMAIN: 'the guest may be sent only to platforms in the same domain',
  SEV: 'the guest may be sent only to platforms that support SEV',
};

/** Aliases accepted by Policy.parse (sevctl/virtee and aleph spellings). */
const ALIASES: Record<string, PolicyFlagName> = {
  NODBG: 'NODBG',
  NO_DBG: 'NODBG',
  NO_DEBUG: 'NODBG',
  NODEBUG: 'NODBG',
  NOKS: 'NOKS',
  NO_KS: 'NOKS',
  NO_KEY_SHARING: 'NOKS',
  ES: 'ES',
  SEV_ES: 'ES',
  ENCRYPTED_STATE: 'ES',
  NOSEND: 'NOSEND',
  NO_SEND: 'NOSEND',
  DOMAIN: 'DOMAIN',
  SEV: 'SEV',
};

const RESERVED_MASK = 0x0000ffc0;

/** The parts of a policy: flags and the minimum firmware API version. */
export interface PolicyInit {
  flags?: PolicyFlagName[];
  /** Minimum firmware API major version (bits 16..23). */
  apiMajor?: number;
  /** Minimum firmware API minor version (bits 24..31). */
  apiMinor?: number;
}

/**
 * The 32-bit SEV guest policy the owner chooses and the firmware enforces: parse, build, explain; invalid values
 * throw PolicyError.
 */
export class Policy {
  /** The full 32-bit policy value, as QEMU passes it and the firmware checks it. */
  readonly value: number;

  constructor(value: number | Policy) {
    const v = value instanceof Policy ? value.value : value;
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new PolicyError(`policy must be a 32-bit unsigned integer, got ${v}`, 'ERR_POLICY_RANGE');
    this.value = v >>> 0;
  }

  static from(value: number | string | Policy): Policy {
    if (value instanceof Policy) return value;
    if (typeof value === 'number') return new Policy(value);
    return Policy.parse(value);
  }

  static fromFlags(init: PolicyInit): Policy {
    let v = 0;
    for (const f of init.flags ?? []) v |= POLICY_FLAGS[f];
    const maj = init.apiMajor ?? 0;
    const min = init.apiMinor ?? 0;
    for (const [n, x] of [
      ['apiMajor', maj],
      ['apiMinor', min],
    ] as const) {
      if (!Number.isInteger(x) || x < 0 || x > 255) throw new PolicyError(`policy ${n} must be 0..255, got ${x}`, 'ERR_POLICY_RANGE');
    }
    return new Policy((v | (maj << 16) | (min << 24)) >>> 0);
  }

  /**
   * Parse a policy: decimal, 0x-hex, or flag names joined by `|`, `,` or `+`
   * (e.g. `NODBG|ES`), optionally with `minfw=MAJ.MIN`.
   */
  static parse(text: string): Policy {
    const s = text.trim();
    if (/^0x[0-9a-f]{1,8}$/i.test(s)) return new Policy(Number.parseInt(s.slice(2), 16));
    if (/^[0-9]+$/.test(s)) {
      const n = Number(s);
      if (n > 0xffffffff) throw new PolicyError(`policy '${text}' does not fit in 32 bits`, 'ERR_POLICY_RANGE');
      return new Policy(n);
    }
    if (s === '') throw new PolicyError('policy is empty', 'ERR_POLICY_PARSE');
    const init: PolicyInit = { flags: [] };
    for (const raw of s.split(/[|,+\s]+/).filter(Boolean)) {
      const m = /^minfw=(\d+)\.(\d+)$/i.exec(raw);
      if (m) {
        init.apiMajor = Number(m[1]);
        init.apiMinor = Number(m[2]);
        continue;
      }
      const f = ALIASES[raw.toUpperCase().replace(/-/g, '_')];
      if (!f)
        throw new PolicyError(`policy '${text}': unknown flag '${raw}' (expected a number or ${Object.keys(POLICY_FLAGS).join('|')})`, 'ERR_POLICY_PARSE');
      init.flags!.push(f);
    }
    return Policy.fromFlags(init);
  }

  has(flag: PolicyFlagName): boolean {
    return (this.value & POLICY_FLAGS[flag]) !== 0;
  }
  get noDebug(): boolean {
    return this.has('NODBG');
  }
  get noKeySharing(): boolean {
    return this.has('NOKS');
  }
  get es(): boolean {
    return this.has('ES');
  }
  get noSend(): boolean {
    return this.has('NOSEND');
  }
  get domain(): boolean {
    return this.has('DOMAIN');
  }
  get sev(): boolean {
    return this.has('SEV');
  }
  /** Minimum firmware API version the guest requires (0.0 = any). */
  get apiMajor(): number {
    return (this.value >>> 16) & 0xff;
  }
  get apiMinor(): number {
    return (this.value >>> 24) & 0xff;
  }
  /** Reserved bits 6..15, which the firmware rejects when set. */
  get reserved(): number {
    return this.value & RESERVED_MASK;
  }

  get flags(): PolicyFlagName[] {
    return (Object.keys(POLICY_FLAGS) as PolicyFlagName[]).filter((f) => this.has(f));
  }

  /** The 4 bytes the firmware MACs and measures: u32 little-endian. */
  bytes(): Buffer {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(this.value);
    return b;
  }

  /**
   * The 4 bytes sevctl 0.6 (virtee/sev 6.x `Policy::bytes`) puts under its
   * policy MAC: flags truncated to bits 0..5, then minfw major = bits 20..23 and
   * minor = bits 16..19. Equal to bytes() for policies <= 0x3F only; kept for
   * reproducing sevctl output, never used by default.
   */
  sevctlBytes(): Buffer {
    const b = Buffer.alloc(4);
    b.writeUInt16LE(this.value & 0x3f, 0);
    b[2] = (this.value >>> 20) & 0x0f;
    b[3] = (this.value >>> 16) & 0x0f;
    return b;
  }

  /** True when the firmware's minimum version requirement is met by `major.minor`. */
  allowsFirmware(major: number, minor: number): boolean {
    return major > this.apiMajor || (major === this.apiMajor && minor >= this.apiMinor);
  }

  toHex(): string {
    return `0x${this.value.toString(16)}`;
  }

  /** `0x5 (NODBG|ES)`; adds `minfw=1.40` when a minimum version is set. */
  toString(): string {
    const parts: string[] = [...this.flags];
    if (this.apiMajor || this.apiMinor) parts.push(`minfw=${this.apiMajor}.${this.apiMinor}`);
    if (this.reserved) parts.push(`reserved=0x${this.reserved.toString(16)}`);
    return `${this.toHex()} (${parts.length ? parts.join('|') : 'no restrictions'})`;
  }

  /** Human explanation, one line per bit group, for `sevkit policy`. */
  explain(): string[] {
    const lines = [`policy ${this.toHex()} (${this.value})`];
    for (const f of Object.keys(POLICY_FLAGS) as PolicyFlagName[]) {
      const bit = Math.log2(POLICY_FLAGS[f]);
      lines.push(`  bit ${bit} ${f.padEnd(6)} ${this.has(f) ? 'set  ' : 'clear'}  ${this.has(f) ? FLAG_TEXT[f] : notText(f)}`);
    }
    lines.push(`  bits 16-31 minimum firmware API ${this.apiMajor}.${this.apiMinor}${this.apiMajor || this.apiMinor ? '' : ' (any firmware)'}`);
    if (this.reserved) lines.push(`  WARNING: reserved bits 0x${this.reserved.toString(16)} are set; firmware rejects this policy`);
    if (this.value > 0x3f) {
      lines.push('  note: sevctl 0.6 MACs a truncated policy for values above 0x3f; sevkit MACs the real 32-bit value');
    }
    return lines;
  }

  toJSON(): { value: number; hex: string; flags: PolicyFlagName[]; apiMajor: number; apiMinor: number; reserved: number } {
    return { value: this.value, hex: this.toHex(), flags: this.flags, apiMajor: this.apiMajor, apiMinor: this.apiMinor, reserved: this.reserved };
  }

  equals(other: Policy | number): boolean {
    return this.value === (typeof other === 'number' ? other >>> 0 : other.value);
  }
}

function notText(f: PolicyFlagName): string {
  switch (f) {
    case 'NODBG':
      return 'debugging is allowed';
    case 'NOKS':
      return 'key sharing is allowed';
    case 'ES':
      return 'plain SEV (register state not encrypted)';
    case 'NOSEND':
      return 'sending is allowed';
    case 'DOMAIN':
      return 'no domain restriction';
    case 'SEV':
      return 'no SEV restriction on migration targets';
  }
}

/** A Policy, its 32-bit value, or its text (hex, decimal or flag names, as Policy.from parses). */
export type PolicyLike = Policy | number | string;
/** Policy.from: a PolicyLike as a Policy; throws PolicyError. */
export function toPolicy(p: PolicyLike): Policy {
  return Policy.from(p);
}
