/**
 * Ethereum signer recovery on a worker thread. secp256k1 recovery is pure JS
 * (@noble/curves, 1.5–2 ms a signature); a CRN checks one for every new
 * owner's X-SignedPubKey, and on its event loop each one would hold every
 * other owner's request for that long (32 owners arriving at once: 60 ms).
 * The worker only turns (digest, r‖s, recovery bit) into a public key; the
 * parsing, the EIP-191 digest and the address stay here, in wallet.ts.
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ethAddressOfPublicKey, ethMessageHash, ethRecoverAddress, splitEthSignature, WalletError } from './wallet.js';

// Plain JS evaluated in the worker (no TypeScript loader there): the same @noble/curves build the
// main thread uses, resolved here and handed over by URL.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
import(workerData.curves).then(({ secp256k1 }) => {
  parentPort.on('message', ({ id, digest, compact, recovery }) => {
    try {
      const pub = secp256k1.Signature.fromBytes(compact, 'compact').addRecoveryBit(recovery).recoverPublicKey(digest).toBytes(false);
      parentPort.postMessage({ id, pub });
    } catch (e) {
      parentPort.postMessage({ id, error: String((e && e.message) || e) });
    }
  });
  parentPort.postMessage({ ready: true });
});
`;

interface Pending {
  resolve(pub: Uint8Array): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

interface WorkerReply {
  ready?: boolean;
  id?: number;
  pub?: Uint8Array;
  error?: string;
}

/**
 * One worker thread that recovers EIP-191 signer addresses (what ethRecoverAddress
 * computes) off the caller's event loop. Started on first use; it keeps the
 * process alive only while a call waits on it. A worker that dies or overruns
 * its deadline fails only the calls it held and is replaced on the next one.
 * Where no worker can start at all, it recovers in-thread rather than refuse
 * every owner.
 */
export class EthRecoverWorker {
  readonly #timeoutMs: number;
  #worker: Worker | undefined;
  #ready: Promise<Worker | undefined> | undefined;
  #unavailable = false;
  #closed = false;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();

  /** `timeoutMs`: how long one recovery may take before it fails with WalletError (default 5 s). */
  constructor(opts: { timeoutMs?: number } = {}) {
    this.#timeoutMs = opts.timeoutMs ?? 5000;
  }

  /** Whether recoveries run on a worker thread (false once none could start here; then they run in-thread). */
  get offThread(): boolean {
    return !this.#unavailable;
  }

  /** The signer address of `signature` over `message` (EIP-191); rejects with WalletError where ethRecoverAddress throws. */
  async recover(message: Uint8Array, signature: Uint8Array): Promise<string> {
    const { compact, recovery } = splitEthSignature(signature);
    const digest = ethMessageHash(message);
    const worker = await this.#start();
    // None here, or the one we waited for was closed or lost meanwhile: answer in-thread.
    if (!worker || this.#worker !== worker) return ethRecoverAddress(message, signature);
    const pub = await new Promise<Uint8Array>((resolve, reject) => {
      const id = this.#nextId++;
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new WalletError(`Ethereum signature recovery took over ${this.#timeoutMs} ms`));
        // A worker that overran is stuck or starved: the next call gets a fresh one.
        this.#drop(worker, new WalletError('the recovery worker was replaced after a timeout'));
      }, this.#timeoutMs);
      timer.unref();
      this.#pending.set(id, { resolve, reject, timer });
      worker.ref();
      worker.postMessage({ id, digest, compact: Uint8Array.from(compact), recovery });
    });
    return ethAddressOfPublicKey(pub);
  }

  /** Stops the worker; calls still waiting fail with WalletError, later ones recover in-thread. */
  async close(): Promise<void> {
    this.#closed = true;
    const w = this.#worker;
    if (w) this.#drop(w, new WalletError('the recovery worker was closed'));
    await w?.terminate().catch(() => undefined);
  }

  /** The running worker, or undefined when this process cannot run one. */
  #start(): Promise<Worker | undefined> {
    if (this.#unavailable || this.#closed) return Promise.resolve(undefined);
    if (this.#ready) return this.#ready;
    let worker: Worker;
    try {
      const curves = pathToFileURL(createRequire(import.meta.url).resolve('@noble/curves/secp256k1.js')).href;
      worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { curves } });
    } catch {
      this.#unavailable = true;
      return Promise.resolve(undefined);
    }
    worker.unref();
    this.#worker = worker;
    let up = false;
    this.#ready = new Promise<Worker | undefined>((resolve) => {
      worker.on('message', (m: WorkerReply) => {
        if (m.ready) {
          up = true;
          return resolve(worker);
        }
        const p = m.id !== undefined ? this.#pending.get(m.id) : undefined;
        if (!p) return;
        this.#pending.delete(m.id!);
        clearTimeout(p.timer);
        if (this.#pending.size === 0) worker.unref();
        if (m.pub) p.resolve(m.pub);
        else p.reject(new WalletError(`Ethereum signature does not recover to a public key: ${m.error ?? 'unknown error'}`));
      });
      const lost = (why: string) => {
        // One that never came up (its module cannot load here) will not next time either: in-thread from now on.
        if (!up && this.#worker === worker) this.#unavailable = true;
        resolve(undefined);
        this.#drop(worker, new WalletError(why));
      };
      worker.on('error', (e) => lost(`the recovery worker failed: ${e.message}`));
      worker.on('exit', () => lost('the recovery worker exited'));
    });
    return this.#ready;
  }

  #drop(worker: Worker, why: Error): void {
    if (this.#worker !== worker) return;
    this.#worker = undefined;
    this.#ready = undefined;
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(why);
      this.#pending.delete(id);
    }
    void worker.terminate().catch(() => undefined);
  }
}
