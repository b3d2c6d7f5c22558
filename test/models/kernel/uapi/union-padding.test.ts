import { describe, expect, it } from 'vitest';
import { decode, encode, vhost_msg_v2 } from '../../../../models/kernel/uapi/index.ts';

describe('union views and struct padding', () => {
  it('lets another union member carry the bytes that are padding in a struct member', () => {
    // iotlb is 26 bytes of members plus 6 of padding; padding[] covers all 64
    const padding = new Uint8Array(64);
    padding[26] = 0xaa; // inside iotlb's trailing padding: no conflict
    const bytes = encode(vhost_msg_v2, { type: 2, asid: 1, iotlb: { iova: 0x1000n, size: 0x2000n, uaddr: 0, perm: 3, type: 2 }, padding: (() => {
      const p = Uint8Array.from(padding);
      p.set(encode(vhost_msg_v2, { iotlb: { iova: 0x1000n, size: 0x2000n, perm: 3, type: 2 } }).subarray(8, 34), 0);
      return p;
    })() });
    expect(bytes.length).toBe(72);
    expect(bytes[8 + 26]).toBe(0xaa);
    const back = decode(vhost_msg_v2, bytes);
    expect(back.iotlb).toMatchObject({ iova: 0x1000n, size: 0x2000n, perm: 3, type: 2 });
  });

  it('still refuses two views that disagree on a byte both define', () => {
    const padding = new Uint8Array(64);
    padding[0] = 1; // iotlb.iova's low byte
    expect(() => encode(vhost_msg_v2, { iotlb: { iova: 0x1000n }, padding })).toThrow(/conflicting bytes at offset 0/);
  });
});
