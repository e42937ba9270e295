import { describe, expect, it } from 'vitest';
import { hostReportFromJson, hostReportOf, toAlephSevInfo } from '../../lib/aleph/sev-info.js';
import { InputError } from '../../lib/errors.js';

const QMP = { enabled: true, 'api-major': 1, 'api-minor': 55, 'build-id': 21, policy: 5, state: 'launch-secret', handle: 3 };
const WANT = { apiMajor: 1, apiMinor: 55, buildId: 21, policy: 5 };

describe('SEV info conversions (one home: aleph/sev-info.ts)', () => {
  it('reads every saved form of the host answer into the values the owner checks', () => {
    const aleph = toAlephSevInfo(QMP);
    for (const j of [QMP, { return: QMP }, aleph, { sev_info: aleph, launch_measure: 'x' }, WANT]) expect(hostReportFromJson(j)).toEqual(WANT);
    expect(hostReportOf(aleph)).toEqual(WANT);
  });

  it('names the first missing field, and refuses a non-object', () => {
    const { 'build-id': _drop, ...noBuild } = QMP;
    expect(() => hostReportFromJson(noBuild)).toThrow(InputError);
    expect(() => hostReportFromJson(noBuild)).toThrow('missing numeric field build-id');
    expect(() => hostReportFromJson({ ...QMP, policy: '5' })).toThrow('missing numeric field policy');
    for (const bad of [null, 7, 'text']) expect(() => hostReportFromJson(bad)).toThrow(InputError);
  });
});
