import { describe, expect, it } from 'vitest';
import { decodeStrictBase64 } from '../../lib/util/base64.js';
import { decodeBase64 } from '../../lib/launch/bytes.js';
import { decodeBase64Strict } from '../../lib/vm/supervisor.js';

// The inputs on which sevkit's three decoders used to disagree (issue 14), and the canonical ones.
const CASES: [string, string | undefined][] = [
  ['QUJD', '414243'],
  ['QUI=', '4142'],
  ['QQ==', '41'],
  ['', ''],
  ['QUI', undefined], // unpadded
  ['QUJ=', undefined], // stray bits in the last character
  ['QUK=', undefined], // stray bits
  [' QUJD ', undefined], // whitespace is not base64
  ['QU JD', undefined],
  ['QUJD\n', undefined],
  ['QUJ-', undefined], // URL alphabet
  ['QQ=', undefined],
  ['QQ===', undefined],
];

describe('one strict base64 rule', () => {
  it.each(CASES)('%j', (text, hex) => {
    const b = decodeStrictBase64(text);
    if (hex === undefined) expect(b).toBeUndefined();
    else expect(b).toEqual(Buffer.from(hex, 'hex'));
  });

  it('refuses what is not a string', () => {
    for (const v of [undefined, null, 12, ['QUJD'], { a: 1 }]) expect(decodeStrictBase64(v)).toBeUndefined();
  });

  it('the launch and VM decoders apply the same rule (the launch one after trimming file whitespace)', () => {
    for (const [text, hex] of CASES) {
      const want = hex === undefined ? undefined : Buffer.from(hex, 'hex');
      let vm: Buffer | undefined;
      try {
        vm = decodeBase64Strict(text, 'x');
      } catch {
        vm = undefined;
      }
      expect(vm).toEqual(want);
      let launch: Buffer | undefined;
      try {
        launch = decodeBase64(text, 'x');
      } catch {
        launch = undefined;
      }
      expect(launch).toEqual(decodeStrictBase64(text.trim()));
    }
  });
});
