/** The daemon/client framing: frames come out whole whatever the chunk boundaries. */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { FrameReader, MAX_FRAME, MSG_OPEN, SimProtocolError, decodeOpen, frame } from '../../lib/sim/protocol.js';
import { privateDaemon } from './helpers.js';

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

describe('daemon framing limits', () => {
  const sim = privateDaemon();

  it('a device connection announcing an IOCTL frame over 1 MiB is closed at the header, not buffered', async () => {
    const sock = net.createConnection(sim.daemon().socketPath);
    await new Promise<void>((r) => sock.once('connect', () => r()));
    const path = Buffer.from('/dev/sev');
    const open = Buffer.alloc(10 + path.length);
    open[0] = 1; // OPEN
    open[1] = 2; // O_RDWR
    open.writeUInt16LE(path.length, 2);
    path.copy(open, 4);
    open.writeUInt32LE(process.pid, 4 + path.length);
    sock.write(frame(open));
    const reply = await new Promise<Buffer>((r) => sock.once('data', r));
    expect(reply.readInt32LE(4)).toBe(0); // opened
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    const hdr = Buffer.alloc(4);
    hdr.writeUInt32LE(MAX_FRAME + 1);
    sock.write(hdr); // the body never comes: only the header can end this
    await closed;
    expect(sock.destroyed).toBe(true);
  });
});

describe('OPEN frames', () => {
  const open = (tag: string, guest?: Buffer) => {
    const p = Buffer.from('/dev/sev-guest');
    const head = Buffer.alloc(4);
    head[0] = MSG_OPEN;
    head[1] = 0x82;
    head.writeUInt16LE(p.length, 2);
    const pid = Buffer.alloc(4);
    pid.writeUInt32LE(4242);
    const t = Buffer.from(tag);
    const tl = Buffer.alloc(2);
    tl.writeUInt16LE(t.length);
    const parts: Buffer[] = [head, p, pid, tl, t];
    if (guest) {
      const gl = Buffer.alloc(2);
      gl.writeUInt16LE(guest.length);
      parts.push(gl, guest);
    }
    return Buffer.concat(parts);
  };

  it('a frame without the guest trailer opens as before; with it, names the guest', () => {
    expect(decodeOpen(open('t1'))).toEqual({ accmode: 2, path: '/dev/sev-guest', pid: 4242, tag: 't1' });
    expect(decodeOpen(open('', Buffer.from('vm-1')))).toEqual({ accmode: 2, path: '/dev/sev-guest', pid: 4242, guest: 'vm-1' });
    expect(decodeOpen(open('t', Buffer.from('x'.repeat(128)))).guest).toBe('x'.repeat(128));
  });

  it('a guest name of 0 or more than 128 bytes, a cut trailer or trailing bytes: SimProtocolError', () => {
    expect(() => decodeOpen(open('', Buffer.alloc(0)))).toThrow(SimProtocolError);
    expect(() => decodeOpen(open('', Buffer.from('x'.repeat(129))))).toThrow(/1\.\.128 bytes/);
    expect(() => decodeOpen(Buffer.concat([open(''), Buffer.from([4])]))).toThrow(SimProtocolError);
    expect(() => decodeOpen(Buffer.concat([open('', Buffer.from('vm')), Buffer.from([0])]))).toThrow(/length mismatch/);
  });
});
