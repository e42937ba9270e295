/** sevctl verify's printout: six lines with link symbols, then the legend. */
import type { ChainVerification, LinkId } from './verify-chain.js';

const GREEN = '\x1b[38;5;2m';
const RED = '\x1b[38;5;1m';
const RESET = '\x1b[0m';

/** The legend line sevctl verify prints under the chain. */
export const VERIFY_LEGEND = ' • = self signed, ⬑ = signs, •̷ = invalid self sign, ⬑̸ = invalid signs';

/**
 * Render a chain verification exactly as sevctl 0.6.2 prints it. Colours
 * (the `colorful` crate's 256-colour green/red) only when `color` is true.
 * Needs the CA chain in the result (the caller errors out earlier without one).
 */
export function renderVerify(r: ChainVerification, color: boolean): string {
  const ok = (id: LinkId) => r.links.find((l) => l.id === id)!.ok;
  const paint = (s: string, good: boolean) => (color ? `${good ? GREEN : RED}${s}${RESET}` : s);
  const lnk = (id: LinkId) => paint(ok(id) ? '⬑' : '⬑\u0338', ok(id));
  const slf = (id: LinkId) => paint(ok(id) ? '•' : '•\u0337', ok(id));
  const lines = [
    r.display.pdh,
    ` ${lnk('pek-pdh')} ${r.display.pek}`,
    `   ${slf('oca-self')}${lnk('oca-pek')} ${r.display.oca}`,
    `    ${lnk('cek-pek')} ${r.display.cek}`,
    `       ${lnk('ask-cek')} ${r.display.ask ?? 'ASK (none)'}`,
    `         ${slf('ark-self')}${lnk('ark-ask')} ${r.display.ark ?? 'ARK (none)'}`,
    '',
    VERIFY_LEGEND,
  ];
  return `${lines.join('\n')}\n`;
}

/** The machine-readable form of a verification (for --json). */
export function verificationJson(r: ChainVerification): Record<string, unknown> {
  return {
    valid: r.ok,
    generation: r.generation ?? null,
    caSource: r.caSource,
    certificates: r.display,
    links: r.links.map((l) => ({ link: l.id, signer: l.signer, subject: l.subject, valid: l.ok, ...(l.reason ? { reason: l.reason } : {}) })),
  };
}
