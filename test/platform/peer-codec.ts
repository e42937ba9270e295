/** JSON codec shared by the platform suite and its sim peer: Buffers as {$buf: base64}, bigints as {$big}. */
export function encode(v: unknown): string {
  return JSON.stringify(v, function (this: Record<string, unknown>, k, val) {
    const raw = this[k];
    if (Buffer.isBuffer(raw) || raw instanceof Uint8Array) return { $buf: Buffer.from(raw as Uint8Array).toString('base64') };
    if (typeof raw === 'bigint') return { $big: raw.toString() };
    return val;
  });
}

export function decode(s: string): unknown {
  return JSON.parse(s, (_k, v) => {
    if (v && typeof v === 'object' && typeof v.$buf === 'string') return Buffer.from(v.$buf, 'base64');
    if (v && typeof v === 'object' && typeof v.$big === 'string') return BigInt(v.$big);
    return v;
  });
}
