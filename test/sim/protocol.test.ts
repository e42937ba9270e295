/** The daemon/client framing: frames come out whole whatever the chunk boundaries. */
import { describe, expect, it } from 'vitest';
import { FrameReader, SimProtocolError, frame } from '../../lib/sim/protocol.js';

const bodies = [Buffer.from('first'), Buffer.alloc(0), Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9]), Buffer.alloc(300, 0xab)];
const stream = Buffer.concat(bodies.map(frame));

describe('FrameReader', () => {
  it('one chunk holding several frames, an empty one among them', () => {
    const frames = new FrameReader().push(stream);
    expect(frames.map((f) => f.toString('hex'))).toEqual(bodies.map((b) => b.toString('hex')));
  });

  it('every split point, headers cut in two included, gives the same frames', () => {
    for (let size = 1; size <= 7; size++) {
      const r = new FrameReader();
      const frames: Buffer[] = [];
      for (let o = 0; o < stream.length; o += size) frames.push(...r.push(stream.subarray(o, o + size)));
      expect(frames.map((f) => f.toString('hex'))).toEqual(bodies.map((b) => b.toString('hex')));
    }
  });

  it('holds back an incomplete frame until its last byte arrives', () => {
    const r = new FrameReader();
    const f = frame(Buffer.from('abcdef'));
    expect(r.push(f.subarray(0, 2))).toEqual([]);
    expect(r.push(f.subarray(2, 9))).toEqual([]);
    const out = r.push(Buffer.concat([f.subarray(9), frame(Buffer.from('g')).subarray(0, 3)]));
    expect(out.map((b) => b.toString())).toEqual(['abcdef']);
  });

  it('refuses a frame over the limit as soon as its header is complete', () => {
    const r = new FrameReader(16);
    const hdr = Buffer.alloc(4);
    hdr.writeUInt32LE(17);
    expect(r.push(hdr.subarray(0, 3))).toEqual([]);
    expect(() => r.push(hdr.subarray(3))).toThrow(SimProtocolError);
    expect(() => new FrameReader(16).push(frame(Buffer.alloc(16)))).not.toThrow();
  });
});
