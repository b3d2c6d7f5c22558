import { describe, expect, it } from 'vitest';
import { P, primitiveCount, sweepFailNth } from '../../../sim/index.ts';
import { IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_ALLOC_PASID, IOMMU_HWPT_DATA_VTD_S1, encode, iommu_hwpt_vtd_s1, iommu_ioas_alloc } from '../../../models/kernel/uapi/index.ts';
import { IOMMU_IOAS_ALLOC } from '../../../models/iommufd/iommufd_h.ts';
import { BASE_IOVA, PAGE_SIZE, setupIommufdHost, type HostHarness } from './mock-domain.ts';

/**
 * iommufd_fail_nth.c TEST_FAIL_NTH(basic_fail_nth, device), on VT-d: IOAS map, mock-domain bind
 * and attach (auto domain), GET_HW_INFO, a NEST_PARENT HWPT, a nested VT-d stage 1, replace onto
 * it, a second device bound straight to the parent — with the nth allocation or lookup failing,
 * for every n, and then each way of tearing it down. Intermediate results are ignored, as in the
 * selftest; every run must end with no object, pin, fd, IOMMU page-table page or DMA ownership
 * left.
 */
type Ids = { ioas: number; stdev: number; idev: number; parent: number; nested: number; stdev2: number };

function build(h: HostHarness): Ids {
  const r = h.ioctl(IOMMU_IOAS_ALLOC, iommu_ioas_alloc, {});
  const ioas = r.rc === 0 ? (r.out.out_ioas_id as number) : 1;
  h.ioas_map_fixed_raw(ioas, h.buffer, 4 * PAGE_SIZE, BASE_IOVA);
  const md = h.mock_domain(ioas);
  const idev = md.rc === 0 ? md.idev_id : 3;
  h.get_hw_info(idev, 24);
  const p = h.hwpt_alloc(idev, ioas, IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_PASID);
  const parent = p.rc === 0 ? p.id : 5;
  const n = h.hwpt_alloc(idev, parent, IOMMU_HWPT_ALLOC_PASID, {
    data_type: IOMMU_HWPT_DATA_VTD_S1,
    data: encode(iommu_hwpt_vtd_s1, { flags: 0n, pgtbl_addr: 0x20_0000n, addr_width: 48 }),
  });
  const nested = n.rc === 0 ? n.id : 6;
  h.mock_domain_replace(md.rc === 0 ? md.stdev_id : 2, nested);
  const md2 = h.mock_domain(parent);
  h.ioas_map_fixed_raw(ioas, h.buffer + 4 * PAGE_SIZE, 4 * PAGE_SIZE, BASE_IOVA + 0x10_0000);
  return { ioas, stdev: md.rc === 0 ? md.stdev_id : 2, idev, parent, nested, stdev2: md2.rc === 0 ? md2.stdev_id : 7 };
}

/** The close orders: each destroys what it names (errors ignored), then the fd is closed. */
const ORDERS: Record<string, (h: HostHarness, ids: Ids) => void> = {
  'close with everything alive': () => {},
  'devices, nested, parent, IOAS, then close': (h, ids) => {
    for (const id of [ids.stdev, ids.stdev2, ids.nested, ids.parent, ids.ioas]) h.destroy(id);
  },
  'IOAS and parent first (EBUSY), then the devices, then close': (h, ids) => {
    for (const id of [ids.ioas, ids.parent, ids.nested, ids.stdev2, ids.stdev]) h.destroy(id);
  },
  'replace back to the IOAS, unmap all, nested, then close': (h, ids) => {
    h.mock_domain_replace(ids.stdev, ids.ioas);
    h.ioas_unmap(ids.ioas, 0, (1n << 64n) - 1n);
    h.destroy(ids.nested);
  },
};

function sweep(order: (h: HostHarness, ids: Ids) => void) {
  return sweepFailNth((n) => {
    const h = setupIommufdHost({ frames: 1 << 12 });
    h.m.sim.failnth.arm(n);
    let ids: Ids | null = null;
    const rec = h.m.sim.step(h.task.thread, '1', 'fail_nth', () => {
      ids = build(h);
    });
    // hook hits are exactly the allocation and lookup primitives charged, plus the free injection points
    expect(h.m.sim.failnth.hits).toBe(primitiveCount(rec, P.kmalloc) + primitiveCount(rec, P.xaLookup) + h.m.sim.failnth.injectHits);
    const fired = h.m.sim.failnth.fired;
    // clean-up cannot fail, as in the selftest (fail_nth is disarmed before teardown)
    h.m.sim.failnth.arm(0);
    order(h, ids!);
    h.teardown();
    expect(h.m.sim.leaks.count('iommu-page')).toBe(0);
    expect(h.task.mm.pinnedPages).toBe(0);
    for (const d of h.devs) expect(h.m.core.iommu_group_get(d.dev)!.owner_cnt, d.dev.name).toBe(0);
    return { failnth: { ...h.m.sim.failnth, fired } as typeof h.m.sim.failnth, result: fired?.name ?? 'none' };
  });
}

describe('iommufd_fail_nth on VT-d', () => {
  for (const [name, order] of Object.entries(ORDERS)) {
    it(`basic_fail_nth.device: every allocation and lookup fails in turn; ${name}: nothing leaks`, () => {
      const steps = sweep(order);
      expect(steps.length).toBeGreaterThan(60);
      const sites = new Set(steps.map((s) => s.result));
      for (const site of [
        'struct iommufd_device',
        'struct iommufd_group',
        'struct iommufd_hwpt_paging',
        'struct iommufd_hwpt_nested',
        'struct iommufd_attach',
        'struct iommufd_attach_handle',
        'struct iommufd_selftest',
        'struct iopt_reserved',
        'dmar_domain',
        'dmar_domain(nested)',
        'iommu_alloc_pages(pgd)',
        'iommu_alloc_pages(pgtable)',
        'iommufd_should_fail(resv_regions)',
        'xa_load(ictx->objects)',
      ]) {
        expect(sites, site).toContain(site);
      }
      expect(steps[steps.length - 1]!.result).toBe('none');
    });
  }
});
