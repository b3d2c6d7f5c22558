import { describe, expect, it } from 'vitest';
import { PhysicalMemory } from '../../../models/hw/memory.ts';
import { GuestMemory } from '../../../models/guest/memory.ts';

describe('PhysicalMemory', () => {
  it('is sparse: reads of unwritten pages are zero and allocate nothing', () => {
    const m = new PhysicalMemory();
    expect(m.readU32(0x1234_5000)).toBe(0);
    expect(m.readU64(0xf_ffff_f000)).toBe(0);
    expect(m.allocatedPages).toBe(0);
    m.writeU8(0x10_0003, 0xab);
    expect(m.allocatedPages).toBe(1);
    expect(m.readU8(0x10_0003)).toBe(0xab);
    expect(m.readU32(0x10_0000)).toBe(0xab00_0000);
  });

  it('reads and writes u8/u32/u64 up to 52-bit addresses', () => {
    const m = new PhysicalMemory();
    const pa = 2 ** 51 + 0x3000;
    m.writeU32(pa, 0xdead_beef);
    expect(m.readU32(pa)).toBe(0xdead_beef);
    m.writeU64(pa + 8, 2 ** 52 + 5);
    expect(m.readU64(pa + 8)).toBe(2 ** 52 + 5);
    m.writeU64Big(pa + 16, 0x8000_0000_0000_1003n); // XD | addr | RW | P
    expect(m.readQword(pa + 16) >>> 0).toBe(0x1003);
    expect(m.hi >>> 31).toBe(1); // XD seen through the high half
    expect(() => m.readU64(pa + 16)).toThrow(RangeError);
    expect(m.readU64Big(pa + 16)).toBe(0x8000_0000_0000_1003n);
    expect(() => m.writeU32(pa + 2, 1)).toThrow(RangeError);
    expect(() => m.writeU8(2 ** 52, 1)).toThrow(RangeError);
  });

  it('copies byte runs across page boundaries a page at a time, as byte by byte would', () => {
    const m = new PhysicalMemory();
    const data = Uint8Array.from({ length: 9000 }, (_, i) => (i * 37 + 11) & 0xff);
    const pa = 0x5000 - 100; // starts 100 bytes before a boundary, spans three pages
    m.writeBytes(pa, data);
    expect(m.readBytes(pa, data.length)).toEqual(data);
    for (const i of [0, 99, 100, 4195, 4196, 8999]) expect(m.readU8(pa + i)).toBe(data[i]);
    // a run that ends in a never-written page reads zeros there and allocates nothing
    const before = m.allocatedPages;
    const tail = new Uint8Array(16).fill(0xee);
    m.readInto(0x8000 - 8, tail, 0, 16);
    expect(Array.from(tail)).toEqual([...Array.from(m.readBytes(0x8000 - 8, 8)), 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(m.allocatedPages).toBe(before);
  });

  it('guest RAM copies reach the scattered host frames behind each guest page', () => {
    const host = new PhysicalMemory();
    const g = new GuestMemory(host, [0x77, 0x12, 0x40]); // GPA pages 0, 1, 2 → host pfns
    const data = Uint8Array.from({ length: 5000 }, (_, i) => (i * 13) & 0xff);
    g.writeBytes(0x800, data); // GPA 0x800 .. 0x1b88: pages 0 and 1
    expect(g.readBytes(0x800, data.length)).toEqual(data);
    expect(host.readU8(0x77 * 4096 + 0x800)).toBe(data[0]);
    expect(host.readU8(0x12 * 4096)).toBe(data[0x800]);
    expect(host.readU8(0x12 * 4096 + 0xb87)).toBe(data[4999]);
  });

  it('counts only IOMMU-side references', () => {
    const m = new PhysicalMemory();
    m.writeQword(0x5000, 0x1234, 0x5678);
    expect(m.walkReads).toBe(0);
    expect(m.fetch(5, 0)).toBe(0x1234);
    expect(m.hi).toBe(0x5678);
    const out = new Int32Array(16);
    m.fetchEntry(0x5000, 16, out);
    m.update(5, 1, 0x20);
    expect(m.walkReads).toBe(2);
    expect(m.walkWrites).toBe(1);
    expect(m.walkRefs).toBe(3);
    expect(m.readU32(0x5008)).toBe(0x20);
  });

  it('keeps many pages apart (hash table and slab growth)', () => {
    const m = new PhysicalMemory({ initialPages: 16 });
    for (let i = 0; i < 5000; i++) m.writeU32(i * 0x1_0000_1000, i);
    for (let i = 0; i < 5000; i++) expect(m.readU32(i * 0x1_0000_1000)).toBe(i);
    expect(m.allocatedPages).toBe(5000);
  });

  it('names addresses by owner label', () => {
    const m = new PhysicalMemory();
    m.labelRange(0x1_0000_0000, 0x4000_0000, 'guest0.ram');
    m.labelRange(0x2000_0000, 0x10_0000, 'host.iommu');
    expect(m.owner(0x1_0000_5008)).toEqual({ region: 'guest0.ram', offset: 0x5008 });
    expect(m.owner(0x2000_1000)).toEqual({ region: 'host.iommu', offset: 0x1000 });
    expect(m.owner(0x5000)).toBeUndefined();
    expect(() => m.labelRange(0x2000_0000, 0x1000, 'x')).toThrow(RangeError);
  });
});
