import { describe, expect, it } from 'vitest';
import { ACCESS, PAGE_4K, PGTT } from '../../../models/hw/vtd/index.ts';
import { Rig, awFor, gpaToHpa } from './rig.ts';

const SID = 0x0800;
const PASID = 0x42;
const DATA_GPA = 0x80_0000;
const NO_CACHES = { iotlb: 0, fsPwc: 0, ssPwc: 0 };

function nested(n: number, m: number, cacheSizes = NO_CACHES) {
  const rig = new Rig({ cacheSizes });
  const dir = rig.attach(SID);
  const ss = rig.secondStage(m, 0x100_0000, PAGE_4K);
  const fs = rig.guestFirstStage(n);
  fs.map(0x10_0000_0000, DATA_GPA, 16 * PAGE_4K, PAGE_4K, { write: true, accessed: true });
  rig.setPasid(dir, PASID, { pgtt: PGTT.NESTED, did: 4, aw: awFor(m), slptptr: ss.root, flptr: fs.root, flpm: n - 4 });
  return rig;
}

/** Memory references of one translation, read from the memory model's counter. */
function refs(rig: Rig, va: number): number {
  const before = rig.mem.walkReads;
  expect(rig.vtd.translate(SID, PASID, va, ACCESS.READ)).toBe(0);
  return rig.mem.walkReads - before;
}

describe('nested walk memory references', () => {
  for (const [n, m] of [[4, 4], [4, 5], [5, 4], [5, 5]] as const) {
    const walk = (n + 1) * (m + 1) - 1;
    it(`${n}-on-${m}: cold ${walk} + 4 structure fetches, then ${walk} with warm context/PASID caches`, () => {
      const rig = nested(n, m);
      expect(refs(rig, 0x10_0000_0000)).toBe(walk + 4);
      expect(refs(rig, 0x10_0000_1000)).toBe(walk);
      expect(refs(rig, 0x10_0000_0000)).toBe(walk); // no IOTLB, no PWC: every walk is cold
      expect(rig.vtd.result.hpa).toBe(gpaToHpa(DATA_GPA));
    });
  }

  it('the formula values: 24 for 4-on-4, 35 for 5-on-5, 28 and 39 cold', () => {
    expect(refs(nested(4, 4), 0x10_0000_0000)).toBe(28);
    expect(refs(nested(5, 5), 0x10_0000_0000)).toBe(39);
  });

  it('warm caches: an IOTLB hit makes no reference; paging-structure caches shorten a neighbour walk', () => {
    const rig = nested(4, 4, { iotlb: 64, fsPwc: 64, ssPwc: 64 });
    const cold = refs(rig, 0x10_0000_0000);
    expect(cold).toBeLessThanOrEqual(28); // the SS PWC may already help inside the first walk
    expect(refs(rig, 0x10_0000_0000)).toBe(0);
    expect(rig.vtd.result.iotlbHit).toBe(true);
    // neighbour page: combined PDE-cache hit (1 first-stage read) + SS PDE-cache hit (1 read)
    expect(refs(rig, 0x10_0000_1000)).toBe(2);
    expect(rig.vtd.iotlb.hits).toBe(1);
    expect(rig.vtd.iotlb.misses).toBe(2);
  });

  it('the PASID-cache miss alone costs the 2 PASID structure references', () => {
    const rig = nested(4, 4);
    refs(rig, 0x10_0000_0000);
    rig.vtd.invalidatePasidCache(1, 4, PASID);
    expect(refs(rig, 0x10_0000_0000)).toBe(24 + 2);
    rig.vtd.invalidateContextCache(1, 0, 0, 0);
    rig.vtd.invalidatePasidCache(3, 0, 0);
    expect(refs(rig, 0x10_0000_0000)).toBe(24 + 4);
  });
});
