#!/usr/bin/env -S node --import tsx
/**
 * Decoder fuzzing (not part of `npm test`): feeds mutated, truncated, extended
 * and random inputs to every certificate decoder and to what runs on decoded
 * data (public-key conversion, link and chain verification, display). The only
 * acceptable failure is a typed SevkitError; a crash (any other exception) or
 * a hang (no progress for 10 s) fails the run. Deterministic for a given seed.
 *
 *   node --import tsx scripts/certs-fuzz.ts [perDecoder=20000] [seed=1]
 */
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { SevkitError } from '../lib/errors.js';
import * as c from '../lib/certs/index.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const V = path.resolve(ROOT, 'test/fixtures/vectors');
const rd = (...p: string[]) => fs.readFileSync(path.join(V, ...p));

type Target = { name: string; seeds: Buffer[]; run: (b: Buffer, deep: boolean) => void };

const INTERESTING32 = [0, 1, 2, 3, 0x13, 0x100, 0x101, 0x102, 0x103, 0x1000, 0x1001, 0x1002, 0x1003, 0x1004, 1024, 2048, 4096, 8192, 0x7fffffff, 0xffffffff];

function targets(): Target[] {
  const sevCerts = ['naples', 'rome'].flatMap((g) => ['pdh', 'pek', 'oca', 'cek'].map((n) => rd('virtee-sev/tests', g, `${n}.cert`)));
  const caCerts = ['naples', 'rome', 'milan', 'genoa', 'turin'].flatMap((g) =>
    ['ark', 'ask'].map((n) => rd('virtee-sev/src/certs/sev/builtin', g, `${n}.cert`)),
  );
  caCerts.push(rd('virtee-sev/tests/naples/ark.cert.bad'));
  const sevChains = ['naples', 'rome'].map((g) => rd('virtee-derived', g, 'sev_chain.cert'));
  const caChains = ['naples', 'rome'].map((g) => rd('virtee-derived', g, 'ca_chain.cert'));
  const fullChains = ['naples', 'rome'].map((g) => rd('virtee-derived', g, 'full_chain.cert'));
  const ocaKey = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const oca = c.signSevCert(c.createSevCert({ usage: c.Usage.OCA, publicKey: ocaKey.publicKey }), 1, {
    signerUsage: c.Usage.OCA,
    signerAlgo: c.Algo.ECDSA_SHA256,
    privateKey: ocaKey.privateKey,
  });
  const report = c.signLegacyReport({ mnonce: Buffer.alloc(16, 3), launchDigest: Buffer.alloc(32, 4), policy: 1 }, ocaKey.privateKey);
  const pekLike = { ...oca, usage: c.Usage.PEK };
  const romePek = c.decodeSevCert(rd('virtee-sev/tests/rome/pek.cert'));
  const romeAsk = c.builtinCaChain('rome').ask;
  return [
    {
      name: 'decodeSevCert',
      seeds: sevCerts,
      run: (b, deep) => {
        const cert = c.decodeSevCert(b);
        if (!c.encodeSevCert(cert).equals(b)) throw new Error('SEV cert round trip differs');
        c.sevCertDisplay(cert);
        c.sevCertPublicKey(cert);
        if (deep) {
          c.verifySevLink(cert, cert);
          c.verifySevLink(cert, romePek);
          c.verifySevLink(romePek, cert);
          if (cert.usage === c.Usage.CEK) c.verifyAskCek(romeAsk, cert);
        }
      },
    },
    {
      name: 'decodeCaCert',
      seeds: caCerts,
      run: (b, deep) => {
        const { cert, length } = c.decodeCaCertAt(b);
        if (length === b.length && b.length === c.caCertSize(cert.modulusSize) && !c.encodeCaCert(cert).equals(b))
          throw new Error('CA cert round trip differs');
        c.caCertDisplay(cert);
        c.caCertPublicKey(cert);
        if (deep) {
          c.verifyCaLink(cert, cert);
          c.verifyCaLink(romeAsk, cert);
        }
      },
    },
    {
      name: 'decodeSevChain',
      seeds: sevChains,
      run: (b, deep) => {
        const ch = c.decodeSevChain(b);
        if (deep) c.verifyChain({ sev: ch, ca: c.builtinCaChain('rome') });
      },
    },
    {
      name: 'decodeCaChain',
      seeds: caChains,
      run: (b, deep) => {
        const ch = c.decodeCaChain(b);
        if (deep) c.verifyCaLink(ch.ark, ch.ask);
      },
    },
    {
      name: 'decodeFullChain',
      seeds: fullChains,
      run: (b, deep) => {
        const ch = c.decodeFullChain(b);
        if (!c.encodeFullChain(ch).equals(b) && b.length !== 10000 - 256) throw new Error('full chain round trip differs');
        if (deep) c.verifyChain({ sev: ch.sev, ca: ch.ca });
      },
    },
    {
      name: 'decodeLegacyReport',
      seeds: [report],
      run: (b) => {
        c.decodeLegacyReport(b);
        c.verifyLegacyReport(pekLike, b);
      },
    },
    {
      name: 'decodePrivateKeyFor',
      seeds: [c.encodeOcaKey(ocaKey.privateKey), Buffer.from(ocaKey.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string)],
      run: (b) => void c.decodePrivateKeyFor(b, oca, 'key'),
    },
  ];
}

/** xorshift32: deterministic and fast. */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  const next = () => ((x ^= x << 13), (x ^= x >>> 17), (x ^= x << 5), (x >>>= 0), x);
  return { next, int: (n: number) => next() % n, pick: <T>(a: T[]) => a[next() % a.length]! };
}

function mutate(seed: Buffer, r: ReturnType<typeof rng>): Buffer {
  const kind = r.int(8);
  let b = Buffer.from(seed);
  switch (kind) {
    case 0: // bit flips
      for (let i = 1 + r.int(8); i > 0; i--) b[r.int(b.length)]! ^= 1 << r.int(8);
      break;
    case 1: // interesting u32 at a header-ish or aligned offset
      b.writeUInt32LE(r.pick(INTERESTING32), Math.min(b.length - 4, r.int(2) ? r.int(0x40) & ~3 : r.int(b.length - 3) & ~3));
      break;
    case 2: // truncate
      b = b.subarray(0, r.int(b.length + 1));
      break;
    case 3: // extend with random bytes
      b = Buffer.concat([b, crypto.randomBytes(1 + r.int(2000))]);
      break;
    case 4: // random bytes overwrite a run
      {
        const off = r.int(b.length);
        const len = Math.min(b.length - off, 1 + r.int(600));
        for (let i = 0; i < len; i++) b[off + i] = r.int(256);
      }
      break;
    case 5: // fully random of a nearby or random length
      b = Buffer.alloc(r.int(2) ? seed.length : r.int(13000));
      for (let i = 0; i < b.length; i++) b[i] = r.int(256);
      break;
    case 6: // all 0x00 / 0xff runs in signature areas
      b.fill(r.int(2) ? 0 : 0xff, r.int(b.length), b.length);
      break;
    default: // truncate and mutate
      b = b.subarray(0, r.int(b.length + 1));
      if (b.length) b[r.int(b.length)]! ^= 0xff;
  }
  return Buffer.from(b);
}

/** A worker running this TypeScript file (workers do not inherit the tsx loader). */
function tsWorker(opts: { workerData: Record<string, unknown> }): Worker {
  return new Worker(new URL('./ts-worker.mjs', import.meta.url), { workerData: { ...opts.workerData, __script: import.meta.url } });
}

if (!isMainThread) {
  const { perDecoder, seed } = workerData as { perDecoder: number; seed: number };
  const r = rng(seed);
  const stats: Record<string, { inputs: number; accepted: number; typed: number; crashes: string[] }> = {};
  const ts = targets();
  let done = 0;
  let worstMs = 0;
  for (const t of ts) {
    const s = (stats[t.name] = { inputs: 0, accepted: 0, typed: 0, crashes: [] as string[] });
    for (let i = 0; i < perDecoder; i++) {
      const input = mutate(r.pick(t.seeds), r);
      const t0 = performance.now();
      try {
        t.run(input, i % 25 === 0);
        s.accepted++;
      } catch (e) {
        if (e instanceof SevkitError) s.typed++;
        else if (s.crashes.length < 10)
          s.crashes.push(
            `${(e as Error)?.stack?.split('\n').slice(0, 3).join(' | ')} [input ${input.length} bytes, sha256 ${crypto.createHash('sha256').update(input).digest('hex').slice(0, 16)}]`,
          );
        else s.crashes.push('...');
      }
      worstMs = Math.max(worstMs, performance.now() - t0);
      s.inputs++;
      if (++done % 1000 === 0) parentPort!.postMessage({ progress: done });
    }
  }
  parentPort!.postMessage({ stats, worstMs });
} else {
  const perDecoder = Number(process.argv[2] ?? 20000);
  const seed = Number(process.argv[3] ?? 1);
  const t0 = performance.now();
  const worker = tsWorker({ workerData: { perDecoder, seed } });
  let last = Date.now();
  let lastDone = 0;
  const watchdog = setInterval(() => {
    if (Date.now() - last > 10_000) {
      console.log(`HANG: no progress for 10 s after ${lastDone} inputs`);
      void worker.terminate();
      process.exitCode = 1;
      clearInterval(watchdog);
    }
  }, 1000);
  worker.on(
    'message',
    (m: { progress?: number; stats?: Record<string, { inputs: number; accepted: number; typed: number; crashes: string[] }>; worstMs?: number }) => {
      last = Date.now();
      if (m.progress) {
        lastDone = m.progress;
        return;
      }
      clearInterval(watchdog);
      const secs = (performance.now() - t0) / 1000;
      let total = 0;
      let crashes = 0;
      for (const [name, s] of Object.entries(m.stats!)) {
        total += s.inputs;
        crashes += s.crashes.length;
        console.log(`${name.padEnd(20)} inputs ${s.inputs}  decoded ${s.accepted}  typed errors ${s.typed}  crashes ${s.crashes.length}`);
        for (const cr of s.crashes) console.log(`  CRASH ${cr}`);
      }
      console.log(`total inputs ${total}; time ${secs.toFixed(1)} s; slowest input ${m.worstMs!.toFixed(1)} ms; seed ${seed}; crashes ${crashes}; hangs 0`);
      process.exitCode = crashes ? 1 : 0;
      void worker.terminate();
    },
  );
  worker.on('error', (e) => {
    clearInterval(watchdog);
    console.log(`worker died: ${e.message}`);
    process.exitCode = 1;
  });
}
