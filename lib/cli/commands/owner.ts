/**
 * The guest owner's set-up commands: `wallet new|address` (the key `launch` signs with) and `allocate`
 * (reserve a VM on sevkit's reference CRN, what aleph's scheduler does on aleph's network).
 */
import type { Command } from 'commander';
import { Option } from 'commander';
import { action, parseIntArg, printJson } from '../run.js';
import { InputError, UsageError } from '../../errors.js';

/** Registers `wallet` and `allocate`. */
export function register(program: Command): void {
  const w = program.command('wallet').description('Owner wallet keys (the key `sevkit launch` signs its requests with)');
  w.command('new')
    .description('Create a new owner wallet key file (mode 0600; refuses to overwrite) and print its address')
    .argument('<KEY_FILE>', 'file to create')
    .addOption(new Option('--chain <CHAIN>', 'ETH (hex private key) or SOL (solana-keygen JSON array)').choices(['ETH', 'SOL', 'eth', 'sol']).default('ETH'))
    .option('--json', 'print {address, chain, file} as JSON')
    .action(action(walletNewCmd));
  w.command('address')
    .description('Print the address of a wallet key file')
    .argument('<KEY_FILE>', 'Ethereum private key (hex) or Solana keypair (JSON array)')
    .option('--json', 'print {address, chain, file} as JSON')
    .action(action(walletAddressCmd));

  program
    .command('allocate')
    .description("Reserve a VM for an owner on sevkit's reference CRN (POST /control/allocate); prints the VM reference")
    .requiredOption('--crn <URL>', 'CRN base URL, e.g. http://127.0.0.1:4020')
    .option('--vm <REF>', 'VM reference (64 hex digits); default: a new random one')
    .option('--owner <ADDRESS>', 'owner address (Ethereum 0x… or Solana base58)')
    .option('--wallet-key <FILE>', 'take the owner address from this wallet key file (default SEVKIT_WALLET_KEY_FILE)')
    .requiredOption('--firmware <PATH>', 'absolute path of the OVMF image on the CRN host')
    .requiredOption('--policy <P>', 'guest policy (decimal or 0x-hex)', (v) => parseIntArg(v, '--policy'))
    .option('--vcpus <N>', 'vCPUs', (v) => parseIntArg(v, '--vcpus'), 1)
    .option('--memory <MIB>', 'memory in MiB', (v) => parseIntArg(v, '--memory'), 512)
    .option('--disk <PATH>', 'absolute path of the disk image on the CRN host')
    .option('--token-file <FILE>', 'file holding the allocation token (default: SEVKIT_ALLOCATION_TOKEN)')
    .option('--wait <SECONDS>', 'keep trying for this long while the CRN does not accept connections yet', (v) => parseIntArg(v, '--wait'), 0)
    .option('--json', "print the CRN's answer as JSON")
    .action(action(allocateCmd));
}

interface WalletOpts {
  chain: string;
  json?: boolean;
}

/** A new key file's text and address. ETH: 32 random bytes as hex; SOL: seed‖public key as a JSON byte array. */
async function newWalletKey(chain: 'ETH' | 'SOL'): Promise<{ text: string; address: string }> {
  const crypto = await import('node:crypto');
  const { parseWalletKey } = await import('../../aleph/wallet.js');
  let text: string;
  if (chain === 'ETH') {
    text = `0x${crypto.randomBytes(32).toString('hex')}`;
  } else {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
    const d = Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url');
    const x = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
    text = JSON.stringify([...d, ...x]);
    d.fill(0);
  }
  // parseWalletKey refuses the (2^-128 likely) invalid secp256k1 scalar; a new key is then drawn.
  try {
    return { text, address: parseWalletKey(text).address };
  } catch {
    return newWalletKey(chain);
  }
}

async function walletNewCmd(file: string, o: WalletOpts): Promise<void> {
  const fs = await import('node:fs');
  const path = await import('node:path');
  const crypto = await import('node:crypto');
  if (file === '-') throw new UsageError('a wallet key holds key material: give a file name, not -');
  const chain = o.chain.toUpperCase() as 'ETH' | 'SOL';
  if (fs.lstatSync(file, { throwIfNoEntry: false })) throw new InputError(`${file}: already exists; refusing to overwrite a wallet key (choose another name)`);
  const { text, address } = await newWalletKey(chain);
  // Written to a temp file (0600 from the start), then linked into place: link() fails if the name
  // appeared meanwhile, so an existing key is never replaced and no half-written key is ever visible.
  const tmp = path.join(path.dirname(path.resolve(file)), `.${path.basename(file)}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
  try {
    const fd = fs.openSync(tmp, 'wx', 0o600);
    try {
      fs.writeFileSync(fd, `${text}\n`);
      fs.fchmodSync(fd, 0o600);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.linkSync(tmp, file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EEXIST') throw new InputError(`${file}: already exists; refusing to overwrite a wallet key (choose another name)`);
    throw new InputError(`${file}: cannot write the wallet key: ${err.code ?? err.message}`);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  if (o.json) printJson({ address, chain, file });
  else {
    process.stdout.write(`${address}\n`);
    process.stderr.write(
      `sevkit: wrote a new ${chain} wallet key to ${file} (mode 0600); keep it: it is the only way to act on VMs allocated to this address\n`,
    );
  }
}

async function readWallet(file: string): Promise<import('../../aleph/wallet.js').Wallet> {
  const fs = await import('node:fs');
  const { parseWalletKey } = await import('../../aleph/wallet.js');
  let text: Buffer;
  try {
    text = fs.readFileSync(file);
  } catch (e) {
    throw new InputError(`wallet key ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    return parseWalletKey(text.toString('utf8'), file);
  } finally {
    text.fill(0);
  }
}

async function walletAddressCmd(file: string, o: { json?: boolean }): Promise<void> {
  const w = await readWallet(file);
  if (o.json) printJson({ address: w.address, chain: w.chain, file });
  else process.stdout.write(`${w.address}\n`);
}

interface AllocateOpts {
  crn: string;
  vm?: string;
  owner?: string;
  walletKey?: string;
  firmware: string;
  policy: number;
  vcpus: number;
  memory: number;
  disk?: string;
  tokenFile?: string;
  wait: number;
  json?: boolean;
}

async function allocateCmd(o: AllocateOpts): Promise<void> {
  const fs = await import('node:fs');
  const crypto = await import('node:crypto');
  const { CrnClient, CrnUnreachableError } = await import('../../owner/client.js');
  if (o.vm !== undefined && !/^[0-9a-f]{64}$/.test(o.vm)) throw new UsageError(`--vm must be 64 lower-case hex digits, got '${o.vm.slice(0, 80)}'`);
  if (o.owner && o.walletKey) throw new UsageError('give either --owner or --wallet-key, not both');
  const keyFile = o.walletKey ?? (o.owner ? undefined : process.env.SEVKIT_WALLET_KEY_FILE);
  const owner = o.owner ?? (keyFile ? (await readWallet(keyFile)).address : undefined);
  if (!owner) throw new UsageError('the owner is needed: --owner ADDRESS or --wallet-key FILE (or SEVKIT_WALLET_KEY_FILE)');
  let token = process.env.SEVKIT_ALLOCATION_TOKEN;
  if (o.tokenFile) {
    try {
      token = fs.readFileSync(o.tokenFile, 'utf8').trim();
    } catch (e) {
      throw new InputError(`--token-file ${o.tokenFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  if (!token) throw new UsageError('the allocation token is needed: --token-file FILE or SEVKIT_ALLOCATION_TOKEN');
  if (o.wait < 0 || o.wait > 3600) throw new UsageError('--wait must be 0..3600 seconds');
  const ref = o.vm ?? crypto.randomBytes(32).toString('hex');
  const client = new CrnClient({ url: o.crn });
  const body = { ref, owner, firmware: o.firmware, policy: o.policy, vcpus: o.vcpus, memory_mb: o.memory, ...(o.disk ? { disk: o.disk } : {}) };
  const until = Date.now() + o.wait * 1000;
  let answer: Record<string, unknown>;
  for (;;) {
    try {
      answer = await client.allocate(token, body);
      break;
    } catch (e) {
      // Only a CRN that is not listening yet is waited for; a refusal is final.
      const refused = e instanceof CrnUnreachableError && /ECONNREFUSED/.test(e.message);
      if (!refused || Date.now() + 250 > until) throw e;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  if (o.json) printJson({ ...answer, ref });
  else {
    process.stdout.write(`${ref}\n`);
    const cpu = typeof answer.cpu === 'string' ? `, CPU ${answer.cpu}` : '';
    process.stderr.write(`sevkit: allocated VM ${ref} on ${client.url} for ${owner}, policy 0x${o.policy.toString(16)}, ${o.vcpus} vCPU(s)${cpu}\n`);
  }
}
