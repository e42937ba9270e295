import fs from 'node:fs';
import { describe, expect, it } from 'vitest';

const unavailable = process.env.SEVKIT_SIM_UNAVAILABLE;
const hw = process.env.SEVKIT_HW === '1';

describe.skipIf(hw || unavailable)('global setup: test workers run on the simulator', () => {
  it('the worker was exec()ed with the shim preloaded', () => {
    expect(process.env.LD_PRELOAD).toContain('sevkit_sim_preload.so');
    const maps = fs.readFileSync('/proc/self/maps', 'utf8');
    expect(maps).toContain('sevkit_sim_preload.so');
  });

  it('the real addon in this worker reaches the simulator', async () => {
    const { SevPlatform } = await import('../../lib/platform/index.js');
    const st = await new SevPlatform().status();
    expect(st.apiMajor).toBe(1);
    expect(st.apiMinor).toBe(55);
    expect(st.build).toBe(21);
    expect(fs.existsSync(process.env.SEVKIT_SIM_STATE + '/pdh.key.pem')).toBe(true);
  });
});
