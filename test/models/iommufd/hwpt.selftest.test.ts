import { describe, expect, it } from 'vitest';
import { EBUSY, EEXIST, EFAULT, EINVAL, EMSGSIZE, ENOENT, EOPNOTSUPP } from '../../../models/kernel/errno.ts';
import {
  IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_ALLOC_PASID,
  IOMMU_HWPT_DATA_NONE,
  IOMMU_HWPT_DATA_VTD_S1,
  IOMMU_HWPT_FAULT_ID_VALID,
  decode,
  encode,
  iommu_hw_info,
  iommu_ioas_iova_ranges,
  iommu_iova_range,
  iommu_hwpt_vtd_s1,
  offsetOfEnd,
} from '../../../models/kernel/uapi/index.ts';
import type { IommufdHwptPaging } from '../../../models/iommufd/hw_pagetable.ts';
import { IOMMU_GET_HW_INFO, IOMMU_IOAS_IOVA_RANGES } from '../../../models/iommufd/iommufd_h.ts';
import { iommufd_test_mock_domain } from '../../../models/iommufd/selftest.ts';
import { BASE_IOVA, PAGE_SIZE, expectErrno, expectOk, expectRc, ok, setupIommufdHost, type HostHarness, type HwptAllocExtra } from './mock-domain.ts';

/**
 * FIXTURE(iommufd_ioas) and FIXTURE(iommufd_mock_domain) of tools/testing/selftests/iommu/iommufd.c
 * (the allocation and attach cases; read at torvalds/linux@33335584, ~6.8, with the 6.15 HWPT
 * flags from hw_pagetable.c), on the emulated VT-d: the mock devices are PCI functions
 * (selftest.ts), HWPT_DATA_SELFTEST is IOMMU_HWPT_DATA_VTD_S1, and MD_CHECK_MAP is a DMA.
 */
const U64_MAX = (1n << 64n) - 1n;
const vtd_s1 = (over: Partial<{ flags: bigint; pgtbl_addr: bigint; addr_width: number; __reserved: number }> = {}) =>
  encode(iommu_hwpt_vtd_s1, { flags: 0n, pgtbl_addr: 0x10_0000n, addr_width: 48, ...over });

/** FIXTURE_SETUP(iommufd_ioas), variant mock_domain: ioas 1, stdev 2, idev 3, hwpt 4 */
function mockDomain(opts: Parameters<typeof setupIommufdHost>[0] = {}) {
  const h = setupIommufdHost(opts);
  const ioas_id = h.ioas_alloc();
  const md = ok(h.mock_domain(ioas_id));
  return { h, ioas_id, stdev_id: md.stdev_id, hwpt_id: md.hwpt_id, device_id: md.idev_id, d: md.d };
}

function nestedParent(h: HostHarness, device_id: number, ioas_id: number): number {
  return h.hwpt_alloc_ok(device_id, ioas_id, IOMMU_HWPT_ALLOC_NEST_PARENT);
}

describe('FIXTURE(iommufd_ioas) on VT-d', () => {
  it('iommufd_ioas.ioas_destroy (mock_domain): an IOAS with a device on it is EBUSY', () => {
    const { h, ioas_id, stdev_id, device_id, hwpt_id } = mockDomain();
    expect([stdev_id, device_id, hwpt_id]).toEqual([2, 3, 4]);
    expectErrno(h.destroy(ioas_id), EBUSY);
    h.teardown();
  });

  it('iommufd_ioas.ioas_area_destroy (mock_domain): a mapped area does not change EBUSY; the map is live in the second stage', () => {
    const { h, ioas_id, d } = mockDomain();
    h.ioas_map_fixed(ioas_id, h.buffer, PAGE_SIZE, BASE_IOVA);
    h.check_map_dma(d, BASE_IOVA, h.buffer, PAGE_SIZE);
    expectErrno(h.destroy(ioas_id), EBUSY);
    h.teardown();
  });

  it('iommufd_ioas.ioas_area_auto_destroy (mock_domain): ten areas in the domain are unmapped and unpinned by close', () => {
    const { h, ioas_id } = mockDomain();
    for (let i = 0; i !== 10; i++) h.ioas_map_fixed(ioas_id, h.buffer, PAGE_SIZE, BASE_IOVA + i * PAGE_SIZE);
    expect(h.pins()).toBe(10);
    h.teardown();
  });

  it('iommufd_ioas.area (mock_domain): unmap of nothing and splits are ENOENT, over-maps EEXIST; unmapped IOVA faults for the device', () => {
    const { h, ioas_id, d } = mockDomain();
    for (let i = 0; i !== 10; i++) expectErrno(h.ioas_unmap(ioas_id, i * PAGE_SIZE, PAGE_SIZE), ENOENT);
    for (let i = 0; i !== 10; i++) h.ioas_map_fixed(ioas_id, h.buffer, PAGE_SIZE, BASE_IOVA + i * PAGE_SIZE);
    for (let i = 0; i !== 10; i++) expectOk(h.ioas_unmap(ioas_id, BASE_IOVA + i * PAGE_SIZE, PAGE_SIZE));
    h.ioas_map_fixed(ioas_id, h.buffer, 2 * PAGE_SIZE, BASE_IOVA + 16 * PAGE_SIZE);
    expectErrno(h.ioas_unmap(ioas_id, BASE_IOVA + 16 * PAGE_SIZE, PAGE_SIZE), ENOENT);
    expectErrno(h.ioas_unmap(ioas_id, BASE_IOVA + 17 * PAGE_SIZE, PAGE_SIZE), ENOENT);
    for (const [len, at] of [[2, 16], [1, 16], [1, 17], [2, 15], [3, 15]] as const) {
      expectErrno(h.ioas_map_fixed_raw(ioas_id, h.buffer, len * PAGE_SIZE, BASE_IOVA + at * PAGE_SIZE), EEXIST);
    }
    h.check_map_dma(d, BASE_IOVA + 16 * PAGE_SIZE, h.buffer, 2 * PAGE_SIZE);
    expectOk(h.ioas_unmap(ioas_id, 0, U64_MAX));
    expectOk(h.ioas_unmap(ioas_id, 0, U64_MAX));
    expect(h.dma_faults(d, BASE_IOVA + 16 * PAGE_SIZE)).toBe(true);
    h.teardown();
  });

  it('iommufd_ioas.iova_ranges (mock_domain): the VT-d aperture less the MSI window, aligned to the domain page size', () => {
    const { h, ioas_id, hwpt_id } = mockDomain();
    const ranges = h.dataArea;
    const r = h.ioctl(IOMMU_IOAS_IOVA_RANGES, iommu_ioas_iova_ranges, { ioas_id, num_iovas: 4, allowed_iovas: BigInt(ranges) });
    expectOk(r);
    expect(r.out.num_iovas).toBe(2);
    expect(r.out.out_iova_alignment).toBe(BigInt(PAGE_SIZE));
    const got = [0, 1].map((i) => decode(iommu_iova_range, h.peek(ranges + 16 * i, 16)));
    const hwpt = [...h.ictx().objects.entries()].find(([id]) => id === hwpt_id)![1] as IommufdHwptPaging;
    expect(got).toEqual([
      { start: 0n, last: 0xfedf_ffffn },
      { start: 0xfef0_0000n, last: BigInt(hwpt.domain!.geometry.aperture_end) },
    ]);
    // num_iovas 0: EMSGSIZE with the count
    const r0 = h.ioctl(IOMMU_IOAS_IOVA_RANGES, iommu_ioas_iova_ranges, { ioas_id, num_iovas: 0, allowed_iovas: 0n });
    expectErrno(r0, EMSGSIZE);
    expect(r0.out.num_iovas).toBe(2);
    h.teardown();
  });

  it('iommufd_ioas.hwpt_attach (mock_domain): a second device attaches directly to the HWPT and DMAs through it', () => {
    const { h, ioas_id, hwpt_id } = mockDomain();
    h.ioas_map_fixed(ioas_id, h.buffer, 2 * PAGE_SIZE, BASE_IOVA);
    const md2 = ok(h.mock_domain(hwpt_id));
    expect(md2.hwpt_id).toBe(hwpt_id);
    h.check_map_dma(md2.d, BASE_IOVA, h.buffer, 2 * PAGE_SIZE);
    h.teardown();
  });

  it('iommufd_ioas.hwpt_attach (no_domain): test_err_mock_domain(ENOENT) on a HWPT id that does not exist', () => {
    const h = setupIommufdHost();
    h.ioas_alloc();
    const r = h.mock_domain(0);
    expectRc(r, ENOENT);
    // the failed attach unbound the device again: its group is back in the DMA API's hands
    expect(h.m.core.iommu_group_get(r.d.dev)!.owner_cnt).toBe(0);
    h.teardown();
  });

  it('iommufd_ioas.alloc_hwpt_nested (mock_domain): the negative allocation cases', () => {
    const { h, ioas_id, device_id } = mockDomain();
    const data = vtd_s1();
    // dev_id is an IOAS / pt_id is a device
    expectErrno(h.hwpt_alloc(ioas_id, device_id, 0), ENOENT);
    expectErrno(h.hwpt_alloc(device_id, device_id, 0), EINVAL);
    const parent = nestedParent(h, device_id, ioas_id);
    const not_parent = h.hwpt_alloc_ok(device_id, ioas_id, 0);
    const nested = (flags: number, pt: number, extra: HwptAllocExtra) => h.hwpt_alloc(device_id, pt, flags, extra);
    // DATA_NONE with data; a type the driver does not take; data_len below the struct; NULL data
    expectErrno(nested(0, parent, { data_type: IOMMU_HWPT_DATA_NONE, data }), EINVAL);
    expectErrno(nested(0, parent, { data_type: IOMMU_HWPT_DATA_VTD_S1 + 1, data }), EOPNOTSUPP);
    expectErrno(nested(0, parent, { data_type: IOMMU_HWPT_DATA_VTD_S1, data, data_len: offsetOfEnd(iommu_hwpt_vtd_s1, '__reserved') - 1 }), EINVAL);
    expectErrno(nested(0, parent, { data_type: IOMMU_HWPT_DATA_VTD_S1, data: null, data_len: 24 }), EFAULT);
    // NEST_PARENT asked of a nested HWPT; a parent that is not NEST_PARENT
    expectErrno(nested(IOMMU_HWPT_ALLOC_NEST_PARENT, parent, { data_type: IOMMU_HWPT_DATA_VTD_S1, data }), EOPNOTSUPP);
    expectErrno(nested(0, not_parent, { data_type: IOMMU_HWPT_DATA_VTD_S1, data }), EINVAL);
    // 6.15: NEST_PARENT | FAULT_ID_VALID on an IOAS; a fault_id that names no FAULT object
    expectErrno(h.hwpt_alloc(device_id, ioas_id, IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_FAULT_ID_VALID), EOPNOTSUPP);
    expectErrno(nested(IOMMU_HWPT_FAULT_ID_VALID, parent, { data_type: IOMMU_HWPT_DATA_VTD_S1, data, fault_id: 0xffff_ffff }), ENOENT);
    // nothing failed left an object behind: the next id is the next free one
    expect(h.hwpt_alloc_ok(device_id, parent, 0, { data_type: IOMMU_HWPT_DATA_VTD_S1, data })).toBe(not_parent + 1);
    h.teardown();
  });

  it('iommufd_ioas.alloc_hwpt_nested (mock_domain): two nested HWPTs on one parent, nested-on-nested EINVAL, parent EBUSY, the replace rotation and destroy order', () => {
    const { h, ioas_id, stdev_id, device_id } = mockDomain();
    const parent = nestedParent(h, device_id, ioas_id);
    const not_parent = h.hwpt_alloc_ok(device_id, ioas_id, 0);
    const s1 = { data_type: IOMMU_HWPT_DATA_VTD_S1, data: vtd_s1() };
    const n0 = h.hwpt_alloc_ok(device_id, parent, 0, s1);
    const n1 = h.hwpt_alloc_ok(device_id, parent, 0, s1);
    expectErrno(h.hwpt_alloc(device_id, n0, 0, s1), EINVAL);
    expectErrno(h.destroy(parent), EBUSY);
    // attach the device to n0, which is then busy
    ok(h.mock_domain_replace(stdev_id, n0));
    expectErrno(h.destroy(n0), EBUSY);
    // switch from n0 to n1
    ok(h.mock_domain_replace(stdev_id, n1));
    expectErrno(h.destroy(n1), EBUSY);
    expectOk(h.destroy(n0));
    // detach from n1 and destroy it
    ok(h.mock_domain_replace(stdev_id, parent));
    expectOk(h.destroy(n1));
    // back to the IOAS (a new auto domain) and destroy the parents
    ok(h.mock_domain_replace(stdev_id, ioas_id));
    expectOk(h.destroy(parent));
    expectOk(h.destroy(not_parent));
    h.teardown();
  });

  it('iommufd_ioas.alloc_hwpt_nested (no_domain): everything is ENOENT', () => {
    const h = setupIommufdHost();
    const ioas_id = h.ioas_alloc();
    const s1 = { data_type: IOMMU_HWPT_DATA_VTD_S1, data: vtd_s1() };
    expectErrno(h.hwpt_alloc(0, ioas_id, 0), ENOENT);
    expectErrno(h.hwpt_alloc(0, 0, 0, s1), ENOENT);
    expectRc(h.mock_domain_replace(0, 0), ENOENT);
    h.teardown();
  });

  it('hwpt_alloc: a non-zero __reserved is EOPNOTSUPP, and DIRTY_TRACKING is refused where the VT-d has no SLADS', () => {
    const { h, ioas_id, device_id } = mockDomain({ caps: { slads: false } });
    expectErrno(h.hwpt_alloc(device_id, ioas_id, 0, { __reserved: 1 }), EOPNOTSUPP);
    expectErrno(h.hwpt_alloc(device_id, ioas_id, IOMMU_HWPT_ALLOC_DIRTY_TRACKING), EOPNOTSUPP);
    h.teardown();
    // with SLADS the driver gives a second-stage domain for it
    const r = mockDomain();
    expect(r.h.hwpt_alloc_ok(r.device_id, r.ioas_id, IOMMU_HWPT_ALLOC_DIRTY_TRACKING | IOMMU_HWPT_ALLOC_PASID)).toBe(5);
    r.h.teardown();
  });

  it('iommufd_ioas.get_hw_info: zero-size, exact, larger (tail zeroed) and smaller buffers', () => {
    const { h, device_id } = mockDomain();
    const regs = h.m.vtd.regs;
    const cap = regs.get64(0x08);
    const ecap = regs.get64(0x10);
    const le64 = (r: { lo: number; hi: number }) => [r.lo, r.lo >>> 8, r.lo >>> 16, r.lo >>> 24, r.hi, r.hi >>> 8, r.hi >>> 16, r.hi >>> 24].map((b) => b & 0xff);
    const expected = [0, 0, 0, 0, 0, 0, 0, 0, ...le64(cap), ...le64(ecap)];
    // NULL, 0: only the header
    let r = h.get_hw_info(device_id, 0);
    expectOk(r);
    expect(r.out.data_len).toBe(24);
    expect(r.out.out_data_type).toBe(1); // IOMMU_HW_INFO_TYPE_INTEL_VTD
    expect(r.out.out_max_pasid_log2).toBe(20);
    // exact
    r = h.get_hw_info(device_id, 24);
    expectOk(r);
    expect([...h.peek(h.dataArea, 24)]).toEqual(expected);
    // larger: the kernel zeroes the bytes it has no data for
    r = h.get_hw_info(device_id, 32);
    expectOk(r);
    expect(r.out.data_len).toBe(24);
    expect([...h.peek(h.dataArea, 32)]).toEqual([...expected, 0, 0, 0, 0, 0, 0, 0, 0]);
    // smaller: the fields in range are still written, the rest of the buffer untouched
    r = h.get_hw_info(device_id, 4);
    expectOk(r);
    expect([...h.peek(h.dataArea, 8)]).toEqual([0, 0, 0, 0, 0xaa, 0xaa, 0xaa, 0xaa]);
    h.teardown();
  });

  it('iommufd_ioas.get_hw_info (no_domain) and bad flags: ENOENT without a device, EOPNOTSUPP for flags or __reserved', () => {
    const h = setupIommufdHost();
    h.ioas_alloc();
    expectErrno(h.get_hw_info(0, 24), ENOENT);
    expectErrno(h.get_hw_info(0, 32), ENOENT);
    const md = ok(h.mock_domain(1));
    expectErrno(h.ioctl(IOMMU_GET_HW_INFO, iommu_hw_info, { dev_id: md.idev_id, flags: 1 }), EOPNOTSUPP);
    expectErrno(h.ioctl(IOMMU_GET_HW_INFO, iommu_hw_info, { dev_id: md.idev_id, __reserved: [0, 1, 0] }), EOPNOTSUPP);
    h.teardown();
  });
});

describe('FIXTURE(iommufd_mock_domain) on VT-d', () => {
  it('iommufd_mock_domain.basic: a mapped buffer is reachable by DMA; unmapped IOVA faults', () => {
    const { h, ioas_id, d } = mockDomain();
    h.ioas_map_fixed(ioas_id, h.buffer, 8 * PAGE_SIZE, BASE_IOVA);
    h.check_map_dma(d, BASE_IOVA, h.buffer, 8 * PAGE_SIZE);
    expect(h.ioas_unmap(ioas_id, BASE_IOVA, 8 * PAGE_SIZE).rc).toBe(0);
    expect(h.dma_faults(d, BASE_IOVA)).toBe(true);
    h.teardown();
  });

  it('iommufd_mock_domain.replace: replacing onto a new IOAS frees the old auto HWPT (its id is ENOENT)', () => {
    const { h, ioas_id, stdev_id, hwpt_id, d } = mockDomain();
    const ioas2 = h.ioas_alloc();
    ok(h.mock_domain_replace(stdev_id, ioas2));
    expectRc(h.mock_domain_replace(stdev_id, hwpt_id), ENOENT);
    ok(h.mock_domain_replace(stdev_id, ioas2));
    // the new IOAS's mappings are what the device sees
    h.ioas_map_fixed(ioas2, h.buffer + PAGE_SIZE, PAGE_SIZE, BASE_IOVA);
    h.check_map_dma(d, BASE_IOVA, h.buffer + PAGE_SIZE, PAGE_SIZE);
    ok(h.mock_domain_replace(stdev_id, ioas_id));
    expect(h.dma_faults(d, BASE_IOVA)).toBe(true);
    expectOk(h.destroy(ioas2));
    h.teardown();
  });

  it('iommufd_mock_domain.alloc_hwpt: ~NEST_PARENT is EOPNOTSUPP; the hw_pagetable rotation; destroy while attached is EBUSY', () => {
    const { h, ioas_id, stdev_id, device_id } = mockDomain();
    expectErrno(h.hwpt_alloc(device_id, ioas_id, ~IOMMU_HWPT_ALLOC_NEST_PARENT >>> 0), EOPNOTSUPP);
    const hwpt0 = h.hwpt_alloc_ok(device_id, ioas_id, 0);
    const hwpt1 = h.hwpt_alloc_ok(device_id, ioas_id, IOMMU_HWPT_ALLOC_NEST_PARENT);
    ok(h.mock_domain_replace(stdev_id, hwpt0));
    expectErrno(h.destroy(hwpt0), EBUSY);
    ok(h.mock_domain_replace(stdev_id, hwpt1));
    expectErrno(h.destroy(hwpt1), EBUSY);
    ok(h.mock_domain_replace(stdev_id, ioas_id));
    expectOk(h.destroy(hwpt1));
    const md2 = ok(h.mock_domain(hwpt0));
    expectOk(h.destroy(md2.stdev_id));
    expectOk(h.destroy(hwpt0));
    h.teardown();
  });

  it('devices of one IOMMU group share one iommufd_group: the sibling joins the group\'s HWPT, another HWPT is EINVAL, the group detaches with its last device', () => {
    const h = setupIommufdHost();
    // a second function behind the same bridge, in mock0's group, probed at boot
    const sib = h.m.addPciDevice('mock0-fn1', 0x0301, { pasidBits: 20 }, 0x0300);
    const ioas_id = h.ioas_alloc();
    const { hwpt_id, idev_id: device_id } = ok(h.mock_domain(ioas_id));
    const other = h.hwpt_alloc_ok(device_id, ioas_id, 0);
    expectRc(h.asTask(() => iommufd_test_mock_domain(h.ictx(), sib.dev, other)), EINVAL);
    const md = ok(h.asTask(() => iommufd_test_mock_domain(h.ictx(), sib.dev, ioas_id)));
    expect(md.hwpt_id).toBe(hwpt_id);
    expect(h.ictx().groups.size).toBe(1);
    h.ioas_map_fixed(ioas_id, h.buffer, PAGE_SIZE, BASE_IOVA);
    h.check_map_dma(sib, BASE_IOVA, h.buffer, PAGE_SIZE);
    // the first device leaves: the group stays attached for the sibling
    expectOk(h.destroy(2));
    h.check_map_dma(sib, BASE_IOVA, h.buffer, PAGE_SIZE);
    expectOk(h.destroy(md.stdev_id));
    // the last unbind hands the group back to the DMA API (its default domain)
    const group = h.m.core.iommu_group_get(sib.dev)!;
    expect(group.owner_cnt).toBe(0);
    expect(group.domain).toBe(group.default_domain);
    expect(h.ictx().groups.size).toBe(0);
    h.teardown();
  });

  it('the MSI window is reserved in the IOAS once a device is attached (iopt_table_enforce_dev_resv_regions)', () => {
    const { h, ioas_id, stdev_id } = mockDomain();
    expectErrno(h.ioas_map_fixed_raw(ioas_id, h.buffer, PAGE_SIZE, 0xfee0_0000), EINVAL);
    expectErrno(h.ioas_map_fixed_raw(ioas_id, h.buffer, 2 * PAGE_SIZE, 0xfedf_f000), EINVAL);
    h.ioas_map_fixed(ioas_id, h.buffer, PAGE_SIZE, 0xfef0_0000);
    // the device leaves: the range is free again
    expectOk(h.destroy(stdev_id));
    h.ioas_map_fixed(ioas_id, h.buffer, PAGE_SIZE, 0xfee0_0000);
    h.teardown();
  });
});
