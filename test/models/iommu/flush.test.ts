import { describe, expect, it } from 'vitest';
import { iommu_hwpt_vtd_s1_invalidate, IOMMU_HWPT_INVALIDATE_DATA_VTD_S1 } from '../../../models/kernel/uapi/index.ts';
import { cache_tag_flush_all } from '../../../models/iommu/intel/cache.ts';
import type { DmarDomain } from '../../../models/iommu/intel/iommu.ts';
import { GUEST_VA, allocNested, handle, nestedRig, recordSubmissions } from '../../helpers/nested.ts';

describe('cache tags and qi_batch', () => {
  it('puts at most 16 descriptors behind one wait', () => {
    const r = nestedRig();
    const s1 = allocNested(r, r.pt) as DmarDomain;
    // twenty PASIDs on one nested domain: twenty IOTLB tags
    for (let p = 1; p <= 20; p++) expect(r.asTask(() => r.m.core.iommu_attach_device_pasid(s1, r.d.dev, p, handle()))).toBe(0);
    const rec = recordSubmissions(r.m);
    cache_tag_flush_all(s1);
    rec.stop();
    expect(rec.batches.map((b) => b.length)).toEqual([17, 5]);
    for (const b of rec.batches) {
      expect(b.slice(0, -1).every((t) => t === 6)).toBe(true); // P_IOTLB, one per (DID, PASID)
      expect(b[b.length - 1]).toBe(5); // one wait
    }
  });

  it('a guest flush of k ranges costs at least k waits, one entry copied per range', () => {
    const r = nestedRig({ ats: true });
    const s1 = allocNested(r, r.pt);
    expect(r.asTask(() => r.m.core.iommu_attach_device_pasid(s1, r.d.dev, 5, handle()))).toBe(0);
    const k = 3;
    const first = r.put(iommu_hwpt_vtd_s1_invalidate, { addr: GUEST_VA, npages: 1, flags: 0 });
    for (let i = 1; i < k; i++) r.put(iommu_hwpt_vtd_s1_invalidate, { addr: GUEST_VA + i * 0x10_0000, npages: 2, flags: 1 });
    const rec = recordSubmissions(r.m);
    const array = { type: IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, uptr: first, entry_len: 24, entry_num: k };
    let ret = -1;
    const step = r.m.sim.step(r.task.thread, '1', 'invalidate', () => {
      ret = r.asTask(() => s1.ops.cache_invalidate_user!(s1, array));
    });
    rec.stop();
    expect(ret).toBe(0);
    expect(array.entry_num).toBe(k);
    expect(rec.batches).toEqual(Array.from({ length: k }, () => [6, 8, 5])); // P_IOTLB + PASID dev-TLB, then the wait
    expect(step.copiesFromUser).toBe(k);
    expect(step.bytesFromUser).toBe(k * 24);
  });

  it('stops at the first bad entry and reports how many it processed', () => {
    const r = nestedRig();
    const s1 = allocNested(r, r.pt);
    expect(r.asTask(() => r.m.core.iommu_attach_device_pasid(s1, r.d.dev, 5, handle()))).toBe(0);
    const first = r.put(iommu_hwpt_vtd_s1_invalidate, { addr: GUEST_VA, npages: 1 });
    r.put(iommu_hwpt_vtd_s1_invalidate, { addr: GUEST_VA + 0x10, npages: 1 }); // unaligned: EINVAL
    r.put(iommu_hwpt_vtd_s1_invalidate, { addr: GUEST_VA, npages: 1, flags: 2 }); // unknown flag
    const array = { type: IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, uptr: first, entry_len: 24, entry_num: 3 };
    expect(r.asTask(() => s1.ops.cache_invalidate_user!(s1, array))).toBe(-22);
    expect(array.entry_num).toBe(1);
  });
});
