/**
 * The software SEV platform: a model of the PSP firmware plus the Linux ccp
 * driver's /dev/sev ioctl handling (kernel-qemu.md §1.4, §2.1), answering the
 * same requests the LD_PRELOAD shim forwards from the unchanged addon.
 *
 * TEST PLATFORM: its roots (ARK/ASK) are the simulator's own test keys. What it
 * signs proves nothing about real AMD hardware.
 *
 * Kernel flavour modelled: pre-6.16 (implicit INIT leaves the platform INIT;
 * SNP ioctls need SNP already initialized, else EINVAL).
 */
import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SevkitError } from '../errors.js';
import { Algo, Curve, Usage } from '../certs/constants.js';
import { decodeSevCert, encodeSevCert, isEmptySlot, sevCertBody, type SevCert } from '../certs/sev-cert.js';
import { verifySevLink } from '../certs/verify.js';
import { deriveBytes, deriveP384, ecdsaSignDeterministic } from './detcrypto.js';
import { FaultTable, type FaultSpec, type Requester } from './faults.js';
import { writeFileAtomic } from '../util/fs.js';
import { buildCaCerts, buildCek, buildOca, buildPdh, buildPek, buildPekCsr, loadOrCreateRoots, type ApiVersion } from './keys.js';
import { beToLeFixed } from '../certs/bytes.js';
import { CHIP_ID_SIZE, Cmd, Errno, FW_BLOB_MAX_SIZE, OUT_BLOBS, PlatformState, Ret, SEV_CERT_SIZE, cmdName } from './uapi.js';
import { SnpConfigFlag, SnpStatusFlag } from '../platform/constants.js';
import { encodePlatformStatus } from '../platform/layout.js';
import { productAsids, type SimProduct } from './host-fixture.js';

/**
 * The simulator's state directory cannot be used: unreadable or of an unknown format, created with another seed,
 * or missing a key (ERR_SIM_STATE).
 */
export class SimStateError extends SevkitError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_SIM_STATE', message, options);
  }
}

/** One SEV_ISSUE_CMD as the shim forwards it. */
export interface IoctlRequest {
  cmd: number;
  /** the fd was opened O_WRONLY or O_RDWR (FMODE_WRITE) */
  writable: boolean;
  /** `data` was a NULL pointer */
  dataNull: boolean;
  /** the struct bytes the driver copy_from_user()s (empty for output-only structs) */
  struct: Buffer;
  /** input blobs (PEK_CERT_IMPORT: pek, oca); null = absent/invalid address or length, 'fault' = unreadable memory */
  blobs: (Buffer | null | 'fault')[];
  /** $SEVKIT_SIM_TAG of the calling process (fault targeting) */
  tag?: string;
  /** pid of the calling process (fault targeting) */
  pid?: number;
}

export interface OutBlob {
  addrOff: number;
  lenOff: number;
  data: Buffer;
}

export interface IoctlReply {
  /** 0 = ioctl returns 0; else the errno of the -1 return */
  errno: number;
  /** the driver wrote `error` (a firmware command was issued) */
  errorSet: boolean;
  fwError: number;
  /** bytes the driver copies back to *data (empty: none) */
  struct: Buffer;
  outs: OutBlob[];
}

export type SimState = 'UNINIT' | 'INIT' | 'WORKING';

/**
 * Options of the simulated platform: the key seed, the firmware API version it reports, the boot state, SNP, and
 * which kernel driver behaviour it models.
 */
export interface SimPlatformOptions {
  /** Seed of all key material (default "0"). An existing state dir keeps its own seed; a different one is an error. */
  seed?: string | number;
  /** Firmware API version reported (default 1.55 build 21, a Genoa-era SEV firmware). */
  api?: Partial<ApiVersion>;
  /** State at "boot" (default INIT, as after kvm_amd load / probe-time init). */
  bootState?: 'UNINIT' | 'INIT';
  /** SNP initialized at boot (default true: kvm_amd sev_snp=Y). */
  snpInitialized?: boolean;
  /** Cache dir for the derived RSA roots (default ~/.cache/sevkit/sim-rsa). */
  rsaCacheDir?: string;
  /**
   * Driver behaviour (kernel-qemu.md §1.7, §2.1). 'pre-6.16' (default): an
   * implicit INIT leaves the platform INIT and SNP ioctls need SNP already
   * initialized (EINVAL). '6.16': commands that INIT implicitly SHUTDOWN again,
   * a failed implicit INIT reports INVALID_PLATFORM_STATE, and SNP ioctls
   * initialize SNP implicitly.
   */
  kernel?: 'pre-6.16' | '6.16';
  /** The EPYC product simulated (default 'genoa', an EPYC 9004: 1006 ASIDs); sets how many guests fit at once. */
  product?: SimProduct;
}

const STATE_FILE = 'state.json';
const STATE_FORMAT = 'sevkit-sim-state/1';

interface PersistedState {
  format: string;
  note: string;
  seed: string;
  api: ApiVersion;
  /** next index for derived OCA/PEK/PDH keys: regenerations never reuse a key */
  counter: number;
  owner: 'self' | 'external';
  snp: { currentTcb: string; reportedTcb: string; maskChipId: boolean; maskChipKey: boolean };
}

type KeyName = 'ark' | 'ask' | 'cek' | 'oca' | 'pek' | 'pdh';

/** A launched guest as the firmware tracks it (details live in guests.ts). */
export interface GuestSlot {
  handle: number;
  asid: number;
}

/** The kernel's KMALLOC_MAX_SIZE on x86-64 (1 << (PAGE_SHIFT + MAX_PAGE_ORDER)): GET_ID2's allocation limit. */
const KMALLOC_MAX_SIZE = 4 << 20;

const DEFAULT_API: ApiVersion = { major: 1, minor: 55, build: 21 };
/** TCB_VERSION: bootloader 7, tee 0, snp 14, microcode 0x48 (bytes 0,1,6,7). */
const DEFAULT_TCB = 0x480e000000000007n;

function u64le(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
}

/**
 * The simulated SEV platform on a state directory: firmware state machine, TEST keys and certificates, guest
 * slots, persisted across runs. It models the firmware; nothing it signs proves anything about AMD hardware.
 */
export class SimPlatform {
  readonly stateDir: string;
  readonly seed: string;
  readonly api: ApiVersion;
  readonly faults: FaultTable;

  private keys = new Map<KeyName, KeyObject>();
  private certs = new Map<KeyName, Buffer>();
  private counter: number;
  private owner: 'self' | 'external';
  private fwState: number;
  private configEs = true;
  private snpInitialized: boolean;
  private snp: { currentTcb: bigint; reportedTcb: bigint; maskChipId: boolean; maskChipKey: boolean };
  private readonly chipId: Buffer;
  /** live guests by handle; WORKING while any exists */
  readonly guests = new Map<number, GuestSlot>();
  private nextHandle = 1;
  /** who sent the request being served (ioctls run synchronously, one at a time) */
  private cur: Requester = {};
  readonly kernel: 'pre-6.16' | '6.16';
  /** the EPYC product played; its ASID count bounds the live guests */
  readonly product: SimProduct;
  readonly maxGuests: number;
  /** the request being served did an implicit INIT (6.16 shuts down again) */
  private didImplicitInit = false;

  private constructor(stateDir: string, st: PersistedState, opts: SimPlatformOptions) {
    this.stateDir = stateDir;
    this.seed = st.seed;
    this.api = st.api;
    this.counter = st.counter;
    this.owner = st.owner;
    this.snp = {
      currentTcb: BigInt(st.snp.currentTcb),
      reportedTcb: BigInt(st.snp.reportedTcb),
      maskChipId: st.snp.maskChipId,
      maskChipKey: st.snp.maskChipKey,
    };
    this.fwState = opts.bootState === 'UNINIT' ? PlatformState.UNINIT : PlatformState.INIT;
    this.snpInitialized = opts.snpInitialized ?? true;
    this.kernel = opts.kernel ?? 'pre-6.16';
    this.product = opts.product ?? 'genoa';
    this.maxGuests = productAsids(this.product);
    this.chipId = deriveBytes(this.seed, 'chip-id', CHIP_ID_SIZE);
    this.faults = new FaultTable(stateDir);
  }

  /** Open the platform stored in `stateDir`, creating it (keys, certs) from the seed if empty. */
  static open(stateDir: string, opts: SimPlatformOptions = {}): SimPlatform {
    const dir = path.resolve(stateDir);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = path.join(dir, STATE_FILE);
    const wantSeed = opts.seed === undefined ? undefined : String(opts.seed);
    if (fs.existsSync(file)) {
      let st: PersistedState;
      try {
        st = JSON.parse(fs.readFileSync(file, 'utf8')) as PersistedState;
      } catch (e) {
        throw new SimStateError(`${file}: not valid JSON; delete the state dir to start over`, { cause: e });
      }
      if (st.format !== STATE_FORMAT) throw new SimStateError(`${file}: unknown format ${String(st.format)}; delete the state dir to start over`);
      if (wantSeed !== undefined && wantSeed !== st.seed) {
        throw new SimStateError(`state dir ${dir} was created with seed ${st.seed}, not ${wantSeed}; use another state directory or delete it`);
      }
      const p = new SimPlatform(dir, st, opts);
      p.loadFiles();
      return p;
    }
    const seed = wantSeed ?? '0';
    const api: ApiVersion = { ...DEFAULT_API, ...opts.api };
    const st: PersistedState = {
      format: STATE_FORMAT,
      note: 'sevkit SIMULATED SEV platform state: TEST keys and TEST roots, proves nothing about real hardware',
      seed,
      api,
      counter: 0,
      owner: 'self',
      snp: { currentTcb: '0x' + DEFAULT_TCB.toString(16), reportedTcb: '0x' + DEFAULT_TCB.toString(16), maskChipId: false, maskChipKey: false },
    };
    const p = new SimPlatform(dir, st, opts);
    p.provision(opts.rsaCacheDir);
    return p;
  }

  // ---- persistence -------------------------------------------------------

  private provision(rsaCacheDir?: string): void {
    const { arkKey, askKey } = loadOrCreateRoots(this.seed, rsaCacheDir);
    const { ark, ask } = buildCaCerts(this.seed, arkKey, askKey);
    const cekKey = deriveP384(this.seed, 'cek');
    this.keys.set('ark', arkKey).set('ask', askKey).set('cek', cekKey);
    this.certs
      .set('ark', ark)
      .set('ask', ask)
      .set('cek', buildCek(this.seed, cekKey, askKey, this.api));
    this.regenerateOwnerKeys();
    this.save(['ark', 'ask', 'cek', 'oca', 'pek', 'pdh']);
    writeFileAtomic(
      path.join(this.stateDir, 'README.txt'),
      "This directory holds the state of sevkit's SIMULATED SEV platform.\n" +
        'All keys here, including the ARK and ASK, are TEST keys made by the simulator\n' +
        '(their key ids start with "SIMTEST-"). Nothing signed by them proves anything\n' +
        'about real AMD hardware. Private keys are PKCS#8 PEM (*.key.pem), certificates\n' +
        'are raw SEV/AMD-format files (*.cert).\n',
    );
  }

  private nextLabel(kind: string): string {
    return `${kind}:${this.counter++}`;
  }

  /** PEK_GEN / FACTORY_RESET: new self-signed OCA, new PEK, new PDH. */
  private regenerateOwnerKeys(): void {
    const oca = deriveP384(this.seed, this.nextLabel('oca'));
    const pek = deriveP384(this.seed, this.nextLabel('pek'));
    this.keys.set('oca', oca).set('pek', pek);
    this.certs.set('oca', buildOca(oca, this.api)).set('pek', buildPek(pek, oca, this.key('cek'), this.api));
    this.owner = 'self';
    this.regeneratePdh();
  }

  private regeneratePdh(): void {
    const pdh = deriveP384(this.seed, this.nextLabel('pdh'));
    this.keys.set('pdh', pdh);
    this.certs.set('pdh', buildPdh(pdh, this.key('pek'), this.api));
  }

  private key(name: KeyName): KeyObject {
    const k = this.keys.get(name);
    if (!k) throw new SimStateError(`simulator has no ${name.toUpperCase()} private key`);
    return k;
  }

  private cert(name: KeyName): Buffer {
    const c = this.certs.get(name);
    if (!c) throw new SimStateError(`simulator has no ${name.toUpperCase()} certificate`);
    return c;
  }

  private save(changed: KeyName[]): void {
    for (const name of changed) {
      const keyFile = path.join(this.stateDir, `${name}.key.pem`);
      const k = this.keys.get(name);
      if (k) writeFileAtomic(keyFile, k.export({ format: 'pem', type: 'pkcs8' }) as string, 0o600);
      else fs.rmSync(keyFile, { force: true });
      writeFileAtomic(path.join(this.stateDir, `${name}.cert`), this.cert(name));
    }
    const st: PersistedState = {
      format: STATE_FORMAT,
      note: 'sevkit SIMULATED SEV platform state: TEST keys and TEST roots, proves nothing about real hardware',
      seed: this.seed,
      api: this.api,
      counter: this.counter,
      owner: this.owner,
      snp: {
        currentTcb: '0x' + this.snp.currentTcb.toString(16),
        reportedTcb: '0x' + this.snp.reportedTcb.toString(16),
        maskChipId: this.snp.maskChipId,
        maskChipKey: this.snp.maskChipKey,
      },
    };
    writeFileAtomic(path.join(this.stateDir, STATE_FILE), JSON.stringify(st, null, 2) + '\n');
  }

  private loadFiles(): void {
    for (const name of ['ark', 'ask', 'cek', 'oca', 'pek', 'pdh'] as KeyName[]) {
      const certFile = path.join(this.stateDir, `${name}.cert`);
      const keyFile = path.join(this.stateDir, `${name}.key.pem`);
      try {
        this.certs.set(name, fs.readFileSync(certFile));
      } catch (e) {
        throw new SimStateError(`state dir ${this.stateDir} is incomplete: cannot read ${name}.cert; delete it to start over`, { cause: e });
      }
      if (name === 'oca' && this.owner === 'external') continue; // the owner keeps the OCA key
      try {
        this.keys.set(name, crypto.createPrivateKey(fs.readFileSync(keyFile)));
      } catch (e) {
        throw new SimStateError(`state dir ${this.stateDir} is incomplete: cannot read ${name}.key.pem; delete it to start over`, { cause: e });
      }
    }
  }

  // ---- read-only views ---------------------------------------------------

  get state(): SimState {
    return this.fwState === PlatformState.UNINIT ? 'UNINIT' : this.guests.size > 0 ? 'WORKING' : 'INIT';
  }

  get ownership(): 'self' | 'external' {
    return this.owner;
  }

  /** Raw 0x824-byte certificate / AMD CA certificate currently held. */
  certificate(name: KeyName): Buffer {
    return Buffer.from(this.cert(name));
  }

  /** ASK‖ARK, the sevctl `--ca` file layout. */
  caChain(): Buffer {
    return Buffer.concat([this.cert('ask'), this.cert('ark')]);
  }

  /** PDH private key (firmware side of LAUNCH_START). */
  pdhPrivateKey(): KeyObject {
    return this.key('pdh');
  }

  /** The current PEK private key: firmware signs ATTESTATION reports with it. */
  pekPrivateKey(): KeyObject {
    return this.key('pek');
  }

  get chipIdBytes(): Buffer {
    return Buffer.from(this.chipId);
  }

  /** PLATFORM_STATUS's CONFIG_ES flag (0x100): INIT'ed with SEV-ES (a TMR was given). */
  get esConfigured(): boolean {
    return this.configEs && this.fwState !== PlatformState.UNINIT;
  }

  /**
   * KVM's sev_guest_init() calls sev_platform_init() before the VM's first
   * LAUNCH_START, so a guest launched on an UNINIT platform (after
   * `sevctl reset`) INITs it, as the ioctls' implicit INIT does. Returns the
   * firmware status of that INIT (SUCCESS when there was nothing to do).
   */
  initForGuest(who: Requester = {}): number {
    if (this.fwState !== PlatformState.UNINIT) return Ret.SUCCESS;
    const reply: IoctlReply = { errno: 0, errorSet: false, fwError: 0, struct: Buffer.alloc(0), outs: [] };
    const prev = this.cur;
    this.cur = who;
    try {
      const e = this.implicitInit(reply);
      this.didImplicitInit = false; // the guest keeps it up, on 6.16 too
      return e ? reply.fwError : Ret.SUCCESS;
    } finally {
      this.cur = prev;
    }
  }

  injectFault(spec: FaultSpec): void {
    this.faults.add(spec);
  }

  // ---- guest bookkeeping (used by guests.ts) ------------------------------

  /** Firmware-side checks + bookkeeping for a new guest; returns a status or the slot. */
  allocGuest(): { status: number; slot?: GuestSlot } {
    if (this.fwState === PlatformState.UNINIT) return { status: Ret.INVALID_PLATFORM_STATE };
    // One ASID per guest: the product's CPUs have that many (the firmware refuses the next).
    if (this.guests.size >= this.maxGuests) return { status: Ret.RESOURCE_LIMIT };
    const handle = this.nextHandle++;
    const slot: GuestSlot = { handle, asid: handle };
    this.guests.set(handle, slot);
    this.fwState = PlatformState.WORKING;
    return { status: Ret.SUCCESS, slot };
  }

  freeGuest(handle: number): boolean {
    const ok = this.guests.delete(handle);
    if (this.guests.size === 0 && this.fwState === PlatformState.WORKING) this.fwState = PlatformState.INIT;
    return ok;
  }

  /** Signs data with the PEK as firmware does for attestation reports (ECDSA P-384 SHA-256). */
  signWithPek(data: Buffer): Buffer {
    return ecdsaSignDeterministic(this.key('pek'), 'sha256', data);
  }

  // ---- firmware primitives -------------------------------------------------

  private fw(reply: IoctlReply, name: string, body: () => number): number {
    const fault = this.faults.take('ioctl', name, 'fw', this.cur);
    const status = fault ? fault.fwStatus! : body();
    reply.errorSet = true;
    reply.fwError = status;
    return status;
  }

  private fwInit(): number {
    if (this.fwState !== PlatformState.UNINIT) return Ret.INVALID_PLATFORM_STATE;
    this.fwState = PlatformState.INIT;
    this.configEs = true; // the kernel hands the firmware a TMR: SEV-ES on
    return Ret.SUCCESS;
  }

  private fwShutdown(): number {
    // Firmware SHUTDOWN works in every state; live guests are lost with it.
    this.guests.clear();
    this.fwState = PlatformState.UNINIT;
    return Ret.SUCCESS;
  }

  /** __sev_platform_init_locked(): INIT when the driver's cached state is UNINIT. */
  private implicitInit(reply: IoctlReply): number {
    if (this.fwState !== PlatformState.UNINIT) return 0;
    let st = this.fw(reply, 'INIT', () => this.fwInit());
    // __sev_platform_init_locked(): SECURE_DATA_INVALID means the firmware
    // found its persistent data corrupt and erased it; the driver retries INIT
    // once, which comes up with that state regenerated (new OCA/PEK/PDH,
    // self-owned, as after PLATFORM_RESET).
    if (st === Ret.SECURE_DATA_INVALID) {
      this.regenerateOwnerKeys();
      this.save(['oca', 'pek', 'pdh']);
      st = this.fw(reply, 'INIT', () => this.fwInit());
    }
    if (st === Ret.SUCCESS) {
      this.didImplicitInit = true;
      return 0;
    }
    if (this.kernel === '6.16') reply.fwError = Ret.INVALID_PLATFORM_STATE;
    return Errno.EIO;
  }

  /** 6.16 SNP ioctls: SNP is initialized for the command when it is not already. */
  private snpAvailable(): boolean {
    return this.snpInitialized || this.kernel === '6.16';
  }

  private statusStruct(): Buffer {
    return encodePlatformStatus({
      apiMajor: this.api.major,
      apiMinor: this.api.minor,
      build: this.api.build,
      state: this.state,
      owner: this.owner,
      esEnabled: this.configEs && this.fwState !== PlatformState.UNINIT,
      guestCount: this.guests.size,
    });
  }

  private snpStatusStruct(): Buffer {
    const b = Buffer.alloc(32);
    b[0] = this.api.major;
    b[1] = this.api.minor;
    // During a 6.16 implicit SNP init the firmware reports itself initialized.
    b[2] = this.snpAvailable() ? 1 : 0;
    b[3] = this.snpAvailable() ? 1 : 0; // is_rmp_initialized
    b.writeUInt32LE(this.api.build, 4);
    let flags = 0;
    if (this.snp.maskChipId) flags |= SnpStatusFlag.mask_chip_id;
    if (this.snp.maskChipKey) flags |= SnpStatusFlag.mask_chip_key;
    flags |= SnpStatusFlag.feature_info; // Genoa firmware implements SNP_FEATURE_INFO
    b.writeUInt32LE(flags, 8);
    b.writeUInt32LE(0, 12); // SNP guests: the simulator launches legacy SEV/SEV-ES only
    u64le(this.snp.currentTcb).copy(b, 16);
    u64le(this.snp.reportedTcb).copy(b, 24);
    return b;
  }

  private apiAtLeast(major: number, minor: number): boolean {
    return this.api.major > major || (this.api.major === major && this.api.minor >= minor);
  }

  // ---- the ioctl ----------------------------------------------------------

  /**
   * What the simulated SNP guest side (lib/sim/snp) signs with: the seed, the
   * chip id, the SNP configuration (SNP_SET_CONFIG's reported TCB and masks) and
   * the TEST ARK/ASK keys (the same RSA keys as the SEV-format ARK/ASK, as on AMD parts).
   */
  snpGuestView(): {
    seed: string;
    chipId: Buffer;
    currentTcb: bigint;
    reportedTcb: bigint;
    maskChipId: boolean;
    maskChipKey: boolean;
    api: ApiVersion;
    arkKey: KeyObject;
    askKey: KeyObject;
  } {
    return { seed: this.seed, chipId: Buffer.from(this.chipId), ...this.snp, api: this.api, arkKey: this.key('ark'), askKey: this.key('ask') };
  }

  /** Access check for open(): the node is root:kvm 0660 in spirit, so only faults deny it. */
  openDevice(accmode: number, who: Requester = {}): number {
    const name = accmode === 0 ? 'O_RDONLY' : accmode === 1 ? 'O_WRONLY' : 'O_RDWR';
    const f = this.faults.take('open', name, 'errno', who);
    return f ? f.errno! : 0;
  }

  ioctl(req: IoctlRequest): IoctlReply {
    this.cur = { tag: req.tag, pid: req.pid };
    this.didImplicitInit = false;
    try {
      return this.ioctlInner(req);
    } finally {
      // 6.16: a command that brought the platform up takes it down again (its own status stays in `error`).
      if (this.didImplicitInit && this.kernel === '6.16' && this.guests.size === 0) this.fwShutdown();
      this.didImplicitInit = false;
      this.cur = {};
    }
  }

  private ioctlInner(req: IoctlRequest): IoctlReply {
    const reply: IoctlReply = { errno: 0, errorSet: false, fwError: 0, struct: Buffer.alloc(0), outs: [] };
    const fail = (errno: number): IoctlReply => {
      reply.errno = errno;
      reply.struct = Buffer.alloc(0);
      reply.outs = [];
      return reply;
    };
    if (!Number.isInteger(req.cmd) || req.cmd < 0 || req.cmd >= Cmd.SEV_MAX) return fail(Errno.EINVAL);
    const name = cmdName(req.cmd);
    const driverFault = this.faults.take('ioctl', name, 'errno', this.cur);
    if (driverFault) return fail(driverFault.errno!);
    const needStruct = (size: number): Buffer | undefined => (req.dataNull || req.struct.length < size ? undefined : req.struct);
    // The driver turns any firmware status other than SUCCESS into EIO (status kept in `error`).
    const answer = (st: number): IoctlReply => (st === Ret.SUCCESS ? reply : { ...reply, errno: Errno.EIO });

    switch (req.cmd) {
      case Cmd.PLATFORM_STATUS: {
        const st = this.fw(reply, name, () => Ret.SUCCESS);
        if (st !== Ret.SUCCESS) return { ...reply, errno: Errno.EIO };
        reply.struct = this.statusStruct();
        return reply;
      }

      case Cmd.FACTORY_RESET: {
        if (!req.writable) return fail(Errno.EPERM);
        // sev_get_platform_state(): a PLATFORM_STATUS firmware call first.
        const st0 = this.fw(reply, 'PLATFORM_STATUS', () => Ret.SUCCESS);
        if (st0 !== Ret.SUCCESS) return { ...reply, errno: Errno.EIO };
        if (this.state === 'WORKING') return { ...reply, errno: Errno.EBUSY };
        if (this.fwState === PlatformState.INIT) {
          const st1 = this.fw(reply, 'SHUTDOWN', () => this.fwShutdown());
          if (st1 !== Ret.SUCCESS) return { ...reply, errno: Errno.EIO };
        }
        const st = this.fw(reply, name, () => {
          if (this.fwState !== PlatformState.UNINIT) return Ret.INVALID_PLATFORM_STATE;
          this.regenerateOwnerKeys();
          this.save(['oca', 'pek', 'pdh']);
          return Ret.SUCCESS;
        });
        return answer(st);
      }

      case Cmd.PEK_GEN:
      case Cmd.PDH_GEN: {
        if (!req.writable) return fail(Errno.EPERM);
        const e = this.implicitInit(reply);
        if (e) return { ...reply, errno: e };
        const st = this.fw(reply, name, () => {
          if (req.cmd === Cmd.PEK_GEN) {
            if (this.fwState !== PlatformState.INIT || this.guests.size > 0) return Ret.INVALID_PLATFORM_STATE;
            this.regenerateOwnerKeys();
            this.save(['oca', 'pek', 'pdh']);
          } else {
            if (this.fwState === PlatformState.UNINIT) return Ret.INVALID_PLATFORM_STATE;
            this.regeneratePdh();
            this.save(['pdh']);
          }
          return Ret.SUCCESS;
        });
        return answer(st);
      }

      case Cmd.PEK_CSR: {
        if (!req.writable) return fail(Errno.EPERM);
        const s = needStruct(12);
        if (!s) return fail(Errno.EFAULT);
        const address = s.readBigUInt64LE(0);
        const length = s.readUInt32LE(8);
        const query = address === 0n || length === 0;
        if (!query && length > FW_BLOB_MAX_SIZE) return fail(Errno.EFAULT);
        const e = this.implicitInit(reply);
        if (e) return { ...reply, errno: e };
        let outLen = query ? 0 : length;
        let csr: Buffer | undefined;
        const st = this.fw(reply, name, () => {
          if (this.fwState === PlatformState.UNINIT) return Ret.INVALID_PLATFORM_STATE;
          if (outLen < SEV_CERT_SIZE) {
            outLen = SEV_CERT_SIZE;
            return Ret.INVALID_LEN;
          }
          outLen = SEV_CERT_SIZE;
          csr = buildPekCsr(this.key('pek'), this.api);
          return Ret.SUCCESS;
        });
        const out = Buffer.from(s.subarray(0, 12));
        out.writeUInt32LE(outLen, 8);
        reply.struct = out;
        if (st === Ret.SUCCESS && csr) reply.outs.push({ ...OUT_BLOBS.pekCsr, data: csr });
        return answer(st);
      }

      case Cmd.PDH_CERT_EXPORT: {
        // Pre-6.16 sev_ioctl_do_pdh_export() INITs (or refuses a read-only fd)
        // before it copies the struct in; 6.16 copies and checks the lengths
        // first and INITs at its `cmd:` label, so EFAULT wins over EPERM there.
        const initFirst = this.kernel !== '6.16';
        const init = (): IoctlReply | undefined => {
          if (this.fwState !== PlatformState.UNINIT) return undefined;
          if (!req.writable) return fail(Errno.EPERM);
          const e = this.implicitInit(reply);
          return e ? { ...reply, errno: e } : undefined;
        };
        if (initFirst) {
          const r = init();
          if (r) return r;
        }
        const s = needStruct(24);
        if (!s) return fail(Errno.EFAULT);
        const pdhAddr = s.readBigUInt64LE(0);
        const pdhLen = s.readUInt32LE(8);
        const chainAddr = s.readBigUInt64LE(12);
        const chainLen = s.readUInt32LE(20);
        const query = pdhAddr === 0n || pdhLen === 0 || chainAddr === 0n;
        if (!query && (pdhLen > FW_BLOB_MAX_SIZE || chainLen > FW_BLOB_MAX_SIZE)) return fail(Errno.EFAULT);
        if (!initFirst) {
          const r = init();
          if (r) return r;
        }
        let fwPdhLen = query ? 0 : pdhLen;
        let fwChainLen = query ? 0 : chainLen;
        let ok = false;
        const st = this.fw(reply, name, () => {
          if (this.fwState === PlatformState.UNINIT) return Ret.INVALID_PLATFORM_STATE;
          const short = fwPdhLen < SEV_CERT_SIZE || fwChainLen < 3 * SEV_CERT_SIZE;
          fwPdhLen = SEV_CERT_SIZE;
          fwChainLen = 3 * SEV_CERT_SIZE;
          if (short) return Ret.INVALID_LEN;
          ok = true;
          return Ret.SUCCESS;
        });
        const out = Buffer.from(s.subarray(0, 24));
        out.writeUInt32LE(fwPdhLen, 8);
        out.writeUInt32LE(fwChainLen, 20);
        reply.struct = out;
        if (st === Ret.SUCCESS && ok) {
          reply.outs.push({ ...OUT_BLOBS.pdh, data: this.cert('pdh') });
          reply.outs.push({ ...OUT_BLOBS.chain, data: Buffer.concat([this.cert('pek'), this.cert('oca'), this.cert('cek')]) });
        }
        return answer(st);
      }

      case Cmd.PEK_CERT_IMPORT: {
        if (!req.writable) return fail(Errno.EPERM);
        if (!needStruct(24)) return fail(Errno.EFAULT);
        // psp_copy_user_blob() per blob, PEK first: no address or a zero /
        // oversized length is EINVAL, unreadable memory EFAULT (memdup_user).
        const [pekBlob, ocaBlob] = req.blobs;
        for (const b of [pekBlob, ocaBlob]) {
          if (b === null || b === undefined) return fail(Errno.EINVAL);
          if (b === 'fault') return fail(Errno.EFAULT);
        }
        const e = this.implicitInit(reply);
        if (e) return { ...reply, errno: e };
        const st = this.fw(reply, name, () => this.fwPekCertImport(pekBlob as Buffer, ocaBlob as Buffer));
        return answer(st);
      }

      case Cmd.GET_ID: {
        if (!this.apiAtLeast(0, 16)) return fail(Errno.ENOTSUPP);
        const st = this.fw(reply, 'GET_ID', () => Ret.SUCCESS);
        if (st !== Ret.SUCCESS) return { ...reply, errno: Errno.EIO };
        const out = Buffer.alloc(128);
        this.chipId.copy(out, 0);
        reply.struct = out;
        return reply;
      }

      case Cmd.GET_ID2: {
        if (!this.apiAtLeast(0, 16)) return fail(Errno.ENOTSUPP);
        const s = needStruct(12);
        if (!s) return fail(Errno.EFAULT);
        const address = s.readBigUInt64LE(0);
        const length = s.readUInt32LE(8);
        const alloc = address !== 0n && length !== 0;
        // kzalloc(input.length, GFP_KERNEL | __GFP_NOWARN) fails above
        // KMALLOC_MAX_SIZE (4 MiB on x86-64): ENOMEM, no firmware call.
        if (alloc && length > KMALLOC_MAX_SIZE) return fail(Errno.ENOMEM);
        let fwLen = alloc ? length : 0;
        const st = this.fw(reply, name, () => {
          const short = fwLen < CHIP_ID_SIZE;
          fwLen = CHIP_ID_SIZE;
          return short ? Ret.INVALID_LEN : Ret.SUCCESS;
        });
        const out = Buffer.from(s.subarray(0, 12));
        out.writeUInt32LE(fwLen, 8);
        reply.struct = out;
        // Fixed kernels copy the id only when the firmware succeeded.
        if (st === Ret.SUCCESS && alloc) reply.outs.push({ ...OUT_BLOBS.getId2, data: Buffer.from(this.chipId) });
        return answer(st);
      }

      case Cmd.SNP_PLATFORM_STATUS: {
        if (req.dataNull) return fail(Errno.EINVAL);
        if (!this.snpAvailable()) return fail(Errno.EINVAL);
        const st = this.fw(reply, name, () => Ret.SUCCESS);
        if (st !== Ret.SUCCESS) return { ...reply, errno: Errno.EIO };
        reply.struct = this.snpStatusStruct();
        return reply;
      }

      case Cmd.SNP_COMMIT: {
        if (!this.snpAvailable()) return fail(Errno.EINVAL);
        const st = this.fw(reply, name, () => {
          this.snp.reportedTcb = this.snp.currentTcb;
          this.save([]);
          return Ret.SUCCESS;
        });
        return answer(st);
      }

      case Cmd.SNP_SET_CONFIG: {
        // sev_ioctl_do_snp_set_config(): `!snp_initialized || !argp->data`
        // is EINVAL before the writable check and the copy (EFAULT).
        if (req.dataNull || !this.snpAvailable()) return fail(Errno.EINVAL);
        if (!req.writable) return fail(Errno.EPERM);
        const s = needStruct(64);
        if (!s) return fail(Errno.EFAULT);
        const st = this.fw(reply, name, () => {
          const reported = s.readBigUInt64LE(0);
          const flags = s.readUInt32LE(8);
          const known = SnpConfigFlag.mask_chip_id | SnpConfigFlag.mask_chip_key;
          if ((flags & ~known) !== 0 || s.subarray(12, 64).some((b) => b !== 0)) return Ret.INVALID_PARAM;
          if (reported > this.snp.currentTcb) return Ret.INVALID_PARAM;
          this.snp.reportedTcb = reported;
          this.snp.maskChipId = (flags & SnpConfigFlag.mask_chip_id) !== 0;
          this.snp.maskChipKey = (flags & SnpConfigFlag.mask_chip_key) !== 0;
          this.save([]);
          return Ret.SUCCESS;
        });
        return answer(st);
      }

      case Cmd.SNP_VLEK_LOAD: {
        // sev_ioctl_do_snp_vlek_load(): same order as SNP_SET_CONFIG, then len/version.
        if (req.dataNull || !this.snpAvailable()) return fail(Errno.EINVAL);
        if (!req.writable) return fail(Errno.EPERM);
        const s = needStruct(16);
        if (!s) return fail(Errno.EFAULT);
        if (s.readUInt32LE(0) !== 16 || s[4] !== 0) return fail(Errno.EINVAL);
        // No AMD key-wrapping key exists in the simulator: every hashstick is refused.
        const st = this.fw(reply, name, () => Ret.INVALID_KEY);
        return answer(st);
      }

      default:
        return fail(Errno.EINVAL);
    }
  }

  /** Firmware PEK_CERT_IMPORT: take an OCA-signed PEK and the OCA, add the CEK signature, become externally owned. */
  private fwPekCertImport(pekBlob: Buffer, ocaBlob: Buffer): number {
    if (this.fwState !== PlatformState.INIT || this.guests.size > 0) return Ret.INVALID_PLATFORM_STATE;
    if (this.owner === 'external') return Ret.ALREADY_OWNED;
    if (pekBlob.length !== SEV_CERT_SIZE || ocaBlob.length !== SEV_CERT_SIZE) return Ret.INVALID_LEN;
    let pek: SevCert;
    let oca: SevCert;
    try {
      pek = decodeSevCert(pekBlob, { name: 'PEK' });
      oca = decodeSevCert(ocaBlob, { name: 'OCA' });
    } catch {
      return Ret.INVALID_CERTIFICATE;
    }
    const ecSigner = (c: SevCert) => c.pubkey.kind === 'ec' && c.pubkey.curve === Curve.P384 && (c.algo === Algo.ECDSA_SHA256 || c.algo === Algo.ECDSA_SHA384);
    if (oca.usage !== Usage.OCA || !ecSigner(oca) || pek.usage !== Usage.PEK) return Ret.INVALID_CERTIFICATE;
    const current = decodeSevCert(this.cert('pek'));
    if (pek.pubkey.kind !== 'ec' || current.pubkey.kind !== 'ec' || !pek.pubkey.qx.equals(current.pubkey.qx) || !pek.pubkey.qy.equals(current.pubkey.qy)) {
      return Ret.INVALID_CERTIFICATE;
    }
    try {
      if (!verifySevLink(oca, oca).ok || !verifySevLink(oca, pek).ok) return Ret.BAD_SIGNATURE;
    } catch {
      return Ret.BAD_SIGNATURE;
    }
    const cekSlot = pek.sigs.findIndex((s) => isEmptySlot(s));
    if (cekSlot < 0) return Ret.INVALID_CERTIFICATE;
    const sig = ecdsaSignDeterministic(this.key('cek'), 'sha256', sevCertBody(pek));
    const value = Buffer.alloc(512);
    beToLeFixed(sig.subarray(0, 48), 72).copy(value, 0);
    beToLeFixed(sig.subarray(48), 72).copy(value, 72);
    pek.sigs[cekSlot] = { usage: Usage.CEK, algo: Algo.ECDSA_SHA256, value };
    this.certs.set('pek', encodeSevCert(pek));
    this.certs.set('oca', Buffer.from(ocaBlob));
    this.keys.delete('oca');
    this.owner = 'external';
    // SEV API PEK_CERT_IMPORT: the firmware then "generates a new PDH" signed
    // by the (now OCA-certified) PEK; AMD's sev-tool self-test asserts a
    // PDH different from the one exported before the import.
    this.regeneratePdh();
    this.save(['oca', 'pek', 'pdh']);
    return Ret.SUCCESS;
  }
}
