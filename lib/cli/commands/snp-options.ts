/**
 * Option parsers the SNP commands share (`sevkit snp verify`, `sevkit attest`): a TCB minimum written as
 * `bl=3,tee=0,snp=8,ucode=115[,fmc=0]`.
 */
import { InvalidArgumentError } from 'commander';

/** A TCB component as the verifier's policy names it. */
type TcbKey = 'fmc' | 'bootloader' | 'tee' | 'snp' | 'microcode';

const TCB_KEYS: Record<string, TcbKey> = {
  fmc: 'fmc',
  bl: 'bootloader',
  bootloader: 'bootloader',
  tee: 'tee',
  snp: 'snp',
  ucode: 'microcode',
  microcode: 'microcode',
};

/** `bl=3,tee=0,snp=8,ucode=115[,fmc=0]` → per-component minimums (SPLs 0..255); a usage error otherwise. */
export function tcbArg(v: string): Partial<Record<TcbKey, number>> {
  const out: Partial<Record<TcbKey, number>> = {};
  for (const part of v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^([a-z]+)\s*[=:]\s*(\d+)$/i.exec(part);
    const k = m ? TCB_KEYS[m[1]!.toLowerCase()] : undefined;
    if (!m || !k || Number(m[2]) > 255)
      throw new InvalidArgumentError(`TCB minimum must look like bl=3,tee=0,snp=8,ucode=115[,fmc=0] (SPLs 0..255), got '${part}'`);
    out[k] = Number(m[2]);
  }
  return out;
}
