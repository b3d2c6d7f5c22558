import { describe, expect, it } from 'vitest';
import { treeMetrics, type Span } from '../../../sim/index.ts';
import {
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_DATA_VTD_S1,
  encode,
  iommu_hwpt_alloc,
  iommu_hwpt_vtd_s1,
  sizeOf,
} from '../../../models/kernel/uapi/index.ts';
import { IOMMU_HWPT_ALLOC } from '../../../models/iommufd/iommufd_h.ts';
import { BASE_IOVA, PAGE_SIZE, ok, setupIommufdHost } from './mock-domain.ts';

/** The first chain of spans named `names`, each a child of the previous, or null. */
function findChain(roots: readonly Span[], names: readonly string[]): Span[] | null {
  for (const r of roots) {
    if (r.fn.name === names[0]) {
      if (names.length === 1) return [r];
      const rest = findChain(r.children, names.slice(1));
      if (rest) return [r, ...rest];
    }
    const deeper = findChain(r.children, names);
    if (deeper) return deeper;
  }
  return null;
}

function depthOf(roots: readonly Span[], target: Span, d = 0): number {
  for (const r of roots) {
    if (r === target) return d;
    const x = depthOf(r.children, target, d + 1);
    if (x >= 0) return x;
  }
  return -1;
}

describe('IOMMU_HWPT_ALLOC of a nested VT-d stage 1: the recorded chain', () => {
  it('__x64_sys_ioctl → vfs_ioctl → iommufd_fops_ioctl → iommufd_hwpt_alloc → iommufd_hwpt_nested_alloc → intel_iommu_domain_alloc_nested, one 24-byte copy of iommu_hwpt_vtd_s1', () => {
    const h = setupIommufdHost();
    const ioas_id = h.ioas_alloc();
    const md = ok(h.mock_domain(ioas_id));
    const parent = h.hwpt_alloc_ok(md.idev_id, ioas_id, IOMMU_HWPT_ALLOC_NEST_PARENT);
    // userspace encodes both structs before the ioctl (plain stores, no uaccess)
    h.poke(h.dataArea, encode(iommu_hwpt_vtd_s1, { flags: 0n, pgtbl_addr: 0x20_0000n, addr_width: 48 }));
    const cmd = encode(iommu_hwpt_alloc, {
      size: sizeOf(iommu_hwpt_alloc),
      dev_id: md.idev_id,
      pt_id: parent,
      data_type: IOMMU_HWPT_DATA_VTD_S1,
      data_len: sizeOf(iommu_hwpt_vtd_s1),
      data_uptr: BigInt(h.dataArea),
    });
    h.poke(h.cmdArea, cmd);
    let rc = -1;
    const rec = h.m.sim.step(h.task.thread, '1', 'HWPT_ALLOC nested', () => {
      rc = h.m.sys.ioctl(h.task, h.fd, IOMMU_HWPT_ALLOC, h.cmdArea);
    });
    expect(rc).toBe(0);

    const chain = findChain(rec.trace, [
      '__x64_sys_ioctl',
      'vfs_ioctl',
      'iommufd_fops_ioctl',
      'iommufd_hwpt_alloc',
      'iommufd_hwpt_nested_alloc',
      'intel_iommu_domain_alloc_nested',
    ]);
    expect(chain).not.toBeNull();
    // the core allocates the object before the driver's domain, and publishes it last
    // device, then pt_id (ANY), then the nested HWPT, respond, finalize
    expect(chain![3]!.children.map((c) => c.fn.name)).toEqual([
      'iommufd_get_object',
      'iommufd_get_object',
      'iommufd_hwpt_nested_alloc',
      'iommufd_ucmd_respond',
      'iommufd_object_finalize',
    ]);
    expect(chain![4]!.children.map((c) => c.fn.name)).toEqual(['_iommufd_object_alloc', 'intel_iommu_domain_alloc_nested']);

    // get_user (4 B) + the header (48 B) + the driver's one copy of its 24-byte struct; 48 B back
    expect(rec.ioctls).toHaveLength(1);
    expect(rec.ioctls[0]).toMatchObject({
      name: 'IOMMU_HWPT_ALLOC',
      copiesFromUser: 3,
      bytesFromUser: 4 + 48 + 24,
      copiesToUser: 1,
      bytesToUser: 48,
    });
    // the deepest uaccess is the driver's copy, in intel_iommu_domain_alloc_nested (syscall = 0)
    expect(rec.userPtrDepth).toBe(depthOf(rec.trace, chain![5]!));
    expect(rec.userPtrDepth).toBe(5);
    // the type travels typed: no frame carries the payload as unsigned long / void *
    const tm = treeMetrics(rec.trace);
    expect(tm.typeErasureHops).toBe(0);
    expect(tm.handlers.alloc).toEqual(['iommufd']);
    h.teardown();
  });
});

describe('pins: one pin per page however many devices and domains map it', () => {
  it('two devices on one IOAS through one auto HWPT: each page pinned once, both devices DMA', () => {
    const h = setupIommufdHost();
    const ioas_id = h.ioas_alloc();
    // mapped before any domain: nothing is pinned yet
    h.ioas_map_fixed(ioas_id, h.buffer, 4 * PAGE_SIZE, BASE_IOVA);
    expect(h.pins()).toBe(0);
    const a = ok(h.mock_domain(ioas_id));
    expect(h.pins()).toBe(4);
    const b = ok(h.mock_domain(ioas_id));
    expect(b.hwpt_id).toBe(a.hwpt_id); // the auto domain is shared
    expect(h.pins()).toBe(4);
    expect(h.task.mm.pinnedPages).toBe(4);
    h.check_map_dma(a.d, BASE_IOVA, h.buffer, 4 * PAGE_SIZE);
    h.check_map_dma(b.d, BASE_IOVA, h.buffer, 4 * PAGE_SIZE);
    h.teardown();
  });

  it('two devices on one IOAS through two HWPTs: two second stages, still one pin per page; unpinned only when the last domain goes', () => {
    const h = setupIommufdHost();
    const ioas_id = h.ioas_alloc();
    const a = ok(h.mock_domain(ioas_id));
    const hwpt2 = h.hwpt_alloc_ok(a.idev_id, ioas_id, IOMMU_HWPT_ALLOC_NEST_PARENT);
    const b = ok(h.mock_domain(hwpt2));
    expect(b.hwpt_id).toBe(hwpt2);
    h.ioas_map_fixed(ioas_id, h.buffer, 8 * PAGE_SIZE, BASE_IOVA);
    expect(h.pins()).toBe(8);
    expect(h.task.mm.pinnedPages).toBe(8);
    h.check_map_dma(a.d, BASE_IOVA, h.buffer, 8 * PAGE_SIZE);
    h.check_map_dma(b.d, BASE_IOVA, h.buffer, 8 * PAGE_SIZE);
    // the first device leaves and its auto domain with it: the other domain keeps the pins
    expect(h.destroy(a.stdev_id).rc).toBe(0);
    expect(h.pins()).toBe(8);
    expect(h.destroy(b.stdev_id).rc).toBe(0);
    expect(h.destroy(hwpt2).rc).toBe(0);
    expect(h.pins()).toBe(0);
    h.teardown();
  });
});
