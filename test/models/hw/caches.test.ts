import { describe, expect, it } from 'vitest';
import { ACCESS, FR, KeyedTable, NO_PASID, PAGE_4K, PGTT, contextEntryAddressFor, readContextEntryAt, writeContextEntryAt } from '../../../models/hw/vtd/index.ts';
import { Rig, gpaToHpa } from './rig.ts';

const SID = 0x0108;
const PASID = 9;
const DID = 21;
const VA = 0x7000_0000;
const OLD_GPA = 0x80_0000;
const NEW_GPA = 0x90_0000;

function staleSetup(caps: ConstructorParameters<typeof Rig>[0] = {}) {
  const rig = new Rig(caps);
  const dir = rig.attach(SID);
  const ss = rig.secondStage(4, 0x100_0000, PAGE_4K);
  const fs = rig.guestFirstStage(4);
  fs.map(VA, OLD_GPA, PAGE_4K, PAGE_4K, { write: true });
  rig.setPasid(dir, PASID, { pgtt: PGTT.NESTED, did: DID, aw: 2, slptptr: ss.root, flptr: fs.root });
  const v = rig.vtd;
  expect(v.translate(SID, PASID, VA + 8, ACCESS.READ)).toBe(0);
  expect(v.result.hpa).toBe(gpaToHpa(OLD_GPA) + 8);
  // the guest changes the PTE and flushes nothing yet
  fs.remap(VA, NEW_GPA, PAGE_4K, { write: true });
  expect(v.translate(SID, PASID, VA + 8, ACCESS.READ)).toBe(0);
  expect(v.result.iotlbHit).toBe(true);
  expect(v.result.hpa).toBe(gpaToHpa(OLD_GPA) + 8); // honestly stale
  return { rig, v, dir, ss, fs };
}

const fresh = (v: Rig['vtd']): number => {
  expect(v.translate(SID, PASID, VA + 8, ACCESS.READ)).toBe(0);
  return v.result.hpa;
};

describe('IOTLB staleness and invalidation granularities', () => {
  const cases: [string, (v: Rig['vtd']) => void][] = [
    ['P_IOTLB, all of a PASID (G=2)', (v) => v.invalidatePasidIotlb(2, DID, PASID)],
    ['P_IOTLB, page-selective (G=3, AM=0)', (v) => v.invalidatePasidIotlb(3, DID, PASID, VA, 0, true)],
    ['P_IOTLB, page-selective with an address mask (AM=4)', (v) => v.invalidatePasidIotlb(3, DID, PASID, VA + 0x5000, 4)],
    ['IOTLB domain-selective (G=2)', (v) => v.invalidateIotlb(2, DID)],
    ['IOTLB page-selective (G=3)', (v) => v.invalidateIotlb(3, DID, VA, 0, false)],
    ['IOTLB global (G=1)', (v) => v.invalidateIotlb(1, 0)],
  ];
  for (const [name, flush] of cases) {
    it(`a stale hit after a PTE change, then the new translation after ${name}`, () => {
      const { v } = staleSetup();
      flush(v);
      expect(fresh(v)).toBe(gpaToHpa(NEW_GPA) + 8);
      expect(v.result.iotlbHit).toBe(false);
    });
  }

  it('misses stay stale: another PASID, another DID, another page', () => {
    const { v } = staleSetup();
    v.invalidatePasidIotlb(2, DID, PASID + 1);
    v.invalidatePasidIotlb(2, DID + 1, PASID);
    v.invalidatePasidIotlb(3, DID, PASID, VA + 0x1000, 0);
    v.invalidateIotlb(2, DID + 1);
    expect(fresh(v)).toBe(gpaToHpa(OLD_GPA) + 8);
  });

  it('second-stage-only entries are not PASID-tagged: they survive a PASID-selective invalidation', () => {
    const rig = new Rig();
    const dir = rig.attach(SID, { ridPasid: 0 });
    const ss = rig.secondStage(4, 0x100_0000, PAGE_4K);
    rig.setPasid(dir, 0, { pgtt: PGTT.SS, did: DID, aw: 2, slptptr: ss.root });
    const v = rig.vtd;
    expect(v.translate(SID, NO_PASID, OLD_GPA, ACCESS.READ)).toBe(0);
    ss.remap(OLD_GPA, gpaToHpa(NEW_GPA), PAGE_4K, { read: true, write: true });
    v.invalidatePasidIotlb(2, DID, 0); // PASID 0 = RID_PASID: still no effect on untagged entries
    v.invalidatePasidIotlb(3, DID, 0, OLD_GPA, 0);
    expect(v.translate(SID, NO_PASID, OLD_GPA, ACCESS.READ)).toBe(0);
    expect(v.result.iotlbHit).toBe(true);
    expect(v.result.hpa).toBe(gpaToHpa(OLD_GPA));
    v.invalidateIotlb(2, DID); // the domain-selective flush Linux uses for SS and nested PGTTs
    expect(v.translate(SID, NO_PASID, OLD_GPA, ACCESS.READ)).toBe(0);
    expect(v.result.hpa).toBe(gpaToHpa(NEW_GPA));
  });

  it('IH = 1 keeps the paging-structure caches; IH = 0 drops them', () => {
    const { rig, v } = staleSetup({ cacheSizes: { fsPwc: 64, ssPwc: 64 } });
    expect(v.fsPwc.size).toBeGreaterThan(0);
    v.invalidatePasidIotlb(3, DID, PASID, VA, 0, true);
    expect(v.fsPwc.size).toBeGreaterThan(0);
    v.invalidatePasidIotlb(3, DID, PASID, VA, 0, false);
    expect(v.fsPwc.size).toBe(0);
    expect(fresh(v)).toBe(gpaToHpa(NEW_GPA) + 8);
    expect(rig.mem.walkReads).toBeGreaterThan(0);
  });
});

describe('PASID-cache and context-cache', () => {
  it('a changed PASID entry keeps translating through the cached entry until a PASID-cache invalidation', () => {
    const { rig, v, dir, ss } = staleSetup();
    const fs2 = rig.guestFirstStage(4);
    fs2.map(VA, NEW_GPA, PAGE_4K, PAGE_4K, {});
    rig.setPasid(dir, PASID, { pgtt: PGTT.NESTED, did: DID, aw: 2, slptptr: ss.root, flptr: fs2.root });
    v.invalidatePasidIotlb(2, DID, PASID);
    expect(fresh(v)).toBe(gpaToHpa(NEW_GPA) + 8); // the old FS table was also rewritten by staleSetup
    const fs3 = rig.guestFirstStage(4);
    fs3.map(VA, 0xa0_0000, PAGE_4K, PAGE_4K, {});
    rig.setPasid(dir, PASID, { pgtt: PGTT.NESTED, did: DID, aw: 2, slptptr: ss.root, flptr: fs3.root });
    v.invalidatePasidIotlb(2, DID, PASID);
    expect(fresh(v)).toBe(gpaToHpa(NEW_GPA) + 8); // stale PASID-cache entry still points at fs2
    v.invalidatePasidCache(1, DID, PASID);
    expect(fresh(v)).toBe(gpaToHpa(NEW_GPA) + 8); // the IOTLB still holds what the stale walk cached
    v.invalidatePasidIotlb(2, DID, PASID); // hence Linux's order: PASID-cache, then IOTLB (§B.2)
    expect(fresh(v)).toBe(gpaToHpa(0xa0_0000) + 8);
    expect(v.pasidCache.hits).toBeGreaterThan(0);
    expect(v.pasidCache.misses).toBe(2);
  });

  it('PASID-cache G = 0 drops every PASID of the domain', () => {
    const { v } = staleSetup();
    expect(v.pasidCache.size).toBe(1);
    v.invalidatePasidCache(0, DID + 1, 0);
    expect(v.pasidCache.size).toBe(1);
    v.invalidatePasidCache(0, DID, 0);
    expect(v.pasidCache.size).toBe(0);
  });

  it('context-cache: stale until a device-selective invalidation (with function mask)', () => {
    const { rig, v } = staleSetup();
    const ce = contextEntryAddressFor(rig.mem, rig.root, SID);
    writeContextEntryAt(rig.mem, ce, { ...readContextEntryAt(rig.mem, ce), present: false });
    v.invalidatePasidCache(3, 0, 0);
    expect(v.translate(SID, PASID, VA, ACCESS.READ)).toBe(0); // cached context entry
    v.invalidateContextCache(3, 0, SID ^ 1, 0); // another function, no mask: no effect
    expect(v.translate(SID, PASID, VA, ACCESS.READ)).toBe(0);
    v.invalidateContextCache(3, 0, SID ^ 1, 3); // FM = 3 masks the function number
    expect(v.translate(SID, PASID, VA, ACCESS.READ)).toBe(FR.CONTEXT_ENTRY_P);
    expect(v.contextCache.size).toBe(0); // not-present is not cached with CM = 0
  });

  it('caching mode: not-present entries are cached until invalidated; without CM they are not', () => {
    for (const cm of [false, true]) {
      const rig = new Rig({ caps: { cachingMode: cm } });
      const dir = rig.attach(SID);
      const v = rig.vtd;
      rig.setPasid(dir, 1, { pgtt: PGTT.PT, did: 3, aw: 2 });
      expect(v.translate(SID, 2, 0x1000, ACCESS.READ)).toBe(FR.PASID_ENTRY_P);
      rig.setPasid(dir, 2, { pgtt: PGTT.PT, did: 3, aw: 2 });
      expect(v.translate(SID, 2, 0x1000, ACCESS.READ)).toBe(cm ? FR.PASID_ENTRY_P : 0);
      v.invalidatePasidCache(1, 3, 2); // what Linux issues after making an entry present under CM
      expect(v.translate(SID, 2, 0x1000, ACCESS.READ)).toBe(0);
    }
  });

  it('caches are bounded: the IOTLB evicts when full', () => {
    const rig = new Rig({ cacheSizes: { iotlb: 4 } });
    const dir = rig.attach(SID);
    const ss = rig.secondStage(4, 0x10_0000, PAGE_4K);
    rig.setPasid(dir, 0, { pgtt: PGTT.SS, did: 1, aw: 2, slptptr: ss.root });
    for (let i = 0; i < 10; i++) expect(rig.vtd.translate(SID, NO_PASID, i * 0x1000, ACCESS.READ)).toBe(0);
    expect(rig.vtd.iotlb.size).toBe(4);
    expect(rig.vtd.iotlb.table.evictions).toBe(6);
    expect(rig.vtd.translate(SID, NO_PASID, 9 * 0x1000, ACCESS.READ)).toBe(0);
    expect(rig.vtd.result.iotlbHit).toBe(true);
  });
});

describe('KeyedTable', () => {
  it('finds, removes and reuses entries under churn', () => {
    const t = new KeyedTable(64);
    const ids = new Map<number, number>();
    for (let i = 0; i < 64; i++) ids.set(i, t.insert(i, -i, i * 7, 0x7fff_ffff));
    for (let i = 0; i < 64; i += 2) t.remove(ids.get(i)!);
    for (let i = 0; i < 64; i++) expect(t.find(i, -i, i * 7, 0x7fff_ffff) >= 0).toBe(i % 2 === 1);
    for (let i = 100; i < 132; i++) t.insert(i, 0, 0, 0);
    expect(t.count).toBe(64);
    expect(t.evictions).toBe(0);
    t.insert(999, 0, 0, 0);
    expect(t.evictions).toBe(1);
    expect(t.find(999, 0, 0, 0)).toBeGreaterThanOrEqual(0);
  });
});
