import { describe, expect, it } from 'vitest';
import { P, primitiveCount, sweepFailNth } from '../../../sim/index.ts';
import {
  IOMMU_IOAS_MAP_FIXED_IOVA,
  encode,
  iommu_ioas_allow_iovas,
  iommu_ioas_copy,
  iommu_ioas_iova_ranges,
  iommu_iova_range,
} from '../../../models/kernel/uapi/index.ts';
import { IOMMU_IOAS_ALLOC, IOMMU_IOAS_ALLOW_IOVAS, IOMMU_IOAS_COPY, IOMMU_IOAS_IOVA_RANGES } from '../../../models/iommufd/iommufd_h.ts';
import { iommu_ioas_alloc } from '../../../models/kernel/uapi/index.ts';
import { FakeDomain, MOCK_APERTURE_START, PAGE_SIZE, setupIommufd, type Harness } from './helpers.ts';

/**
 * tools/testing/selftests/iommu/iommufd_fail_nth.c, TEST_FAIL_NTH(basic_fail_nth, basic) and
 * (map_domain): run the flow with the nth allocation or object lookup failing, for n = 1, 2, …
 * until a run in which nothing failed. Intermediate results are ignored, as in the selftest;
 * every run must close cleanly: no object, pin or fd left, no lock held.
 */
const PAGE = BigInt(PAGE_SIZE);
const BASE = BigInt(MOCK_APERTURE_START);

/** The body of basic / map_domain: every step runs whatever the previous ones returned. */
function flow(h: Harness, withDomain: boolean): void {
  const r = h.ioctl(IOMMU_IOAS_ALLOC, iommu_ioas_alloc, {});
  const ioas_id = r.rc === 0 ? (r.out.out_ioas_id as number) : 1;
  const r2 = h.ioctl(IOMMU_IOAS_ALLOC, iommu_ioas_alloc, {});
  const ioas_id2 = r2.rc === 0 ? (r2.out.out_ioas_id as number) : 2;
  const ranges = h.cmdArea + 2 * PAGE_SIZE;
  h.ioctl(IOMMU_IOAS_IOVA_RANGES, iommu_ioas_iova_ranges, { ioas_id, num_iovas: 10, allowed_iovas: BigInt(ranges) });
  h.poke(ranges, encode(iommu_iova_range, { start: BASE, last: BASE + 1024n * PAGE - 1n }));
  h.ioctl(IOMMU_IOAS_ALLOW_IOVAS, iommu_ioas_allow_iovas, { ioas_id, num_iovas: 1, allowed_iovas: BigInt(ranges) });
  // map_domain: a domain on the IOAS, as test_cmd_mock_domain would attach (fail_nth covers it)
  const dom = new FakeDomain('fake');
  const attached = withDomain && h.attach_fake_domain(ioas_id, dom) === 0;
  h.ioas_map_raw(ioas_id, h.buffer, 8n * PAGE, BASE, IOMMU_IOAS_MAP_FIXED_IOVA | 0b110);
  h.ioas_map_raw(ioas_id, h.buffer, 4n * PAGE, 0, 0b110);
  h.ioctl(IOMMU_IOAS_COPY, iommu_ioas_copy, {
    flags: IOMMU_IOAS_MAP_FIXED_IOVA | 0b110,
    dst_ioas_id: ioas_id2,
    src_ioas_id: ioas_id,
    length: 8n * PAGE,
    dst_iova: BASE,
    src_iova: BASE,
  });
  h.ioas_unmap_raw(ioas_id, BASE, 8n * PAGE);
  h.ioas_unmap_raw(ioas_id, 0, (1n << 64n) - 1n);
  if (attached) h.detach_fake_domain(dom);
}

function sweep(withDomain: boolean) {
  return sweepFailNth((n) => {
    const h = setupIommufd({ frames: 256 });
    h.sim.failnth.arm(n);
    const rec = h.sim.step(h.task.thread, '1', 'fail_nth', () => flow(h, withDomain));
    // hook hits are exactly the allocation and lookup primitives charged, plus the free injection points
    expect(h.sim.failnth.hits).toBe(primitiveCount(rec, P.kmalloc) + primitiveCount(rec, P.xaLookup) + h.sim.failnth.injectHits);
    const fired = h.sim.failnth.fired;
    h.sim.failnth.arm(0);
    // teardown_iommufd: close destroys what is left; nothing may stay pinned or allocated
    h.teardown();
    expect(h.task.mm.pinnedPages).toBe(0);
    return { failnth: { ...h.sim.failnth, fired } as typeof h.sim.failnth, result: fired?.name ?? 'none' };
  });
}

describe('iommufd_fail_nth', () => {
  it('basic_fail_nth.basic: every allocation and lookup of alloc/ranges/allow/map/copy/unmap fails in turn, and close cleans up', () => {
    const steps = sweep(false);
    expect(steps.length).toBeGreaterThan(15);
    const sites = new Set(steps.map((s) => s.result));
    for (const site of ['struct iommufd_ioas', 'xa_alloc(ictx->objects)', 'xa_load(ictx->objects)', 'struct iopt_pages', 'struct iopt_area', 'struct iopt_allowed', 'struct iopt_pages_list']) {
      expect(sites, site).toContain(site);
    }
  });

  it('basic_fail_nth.map_domain: with a domain, pins and batches fail too, and nothing stays pinned', () => {
    const steps = sweep(true);
    const sites = new Set(steps.map((s) => s.result));
    for (const site of ['struct iopt_reserved', 'xa_reserve(iopt->domains)', 'pfn_batch', 'pfn_reader_user upages', 'iommufd_should_fail(pfn_reader_user_pin)']) {
      expect(sites, site).toContain(site);
    }
    expect(steps[steps.length - 1]!.result).toBe('none');
  });
});
