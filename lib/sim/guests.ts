/** Guest-launch firmware commands (filled in below). */
import type { SimPlatform } from './platform.js';

const OPS = new Set<string>();

export function isGuestOp(op: string): boolean {
  return OPS.has(op);
}

export function guestOp(platform: SimPlatform, op: string, args: Record<string, unknown>): unknown {
  void platform;
  void args;
  throw new Error(`unsupported guest op ${op}`);
}
