import { describe, expect, it } from 'vitest';
import { PhysicalMemory } from '../../../models/hw/memory.ts';

describe('per-frame owner labels', () => {
  it('name scattered frames by region and offset, before any range label', () => {
    const mem = new PhysicalMemory();
    mem.labelRange(0x10_0000, 0x10_0000, 'host.pool');
    mem.setPageOwner(0x105, 'guest0.ram', 0x3000);
    mem.setPageOwner(0x101, 'guest0.ram', 0x4000);
    expect(mem.owner(0x105_123)).toEqual({ region: 'guest0.ram', offset: 0x3123 });
    expect(mem.owner(0x101_ff0)).toEqual({ region: 'guest0.ram', offset: 0x4ff0 });
    expect(mem.owner(0x102_000)).toEqual({ region: 'host.pool', offset: 0x2000 });
    mem.setPageOwner(0x105, null);
    expect(mem.owner(0x105_123)).toEqual({ region: 'host.pool', offset: 0x5123 });
  });
});
