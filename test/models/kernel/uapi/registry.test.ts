import { describe, expect, it } from 'vitest';
import * as uapi from '../../../../models/kernel/uapi/index.ts';
import {
  allStructs,
  citation,
  iommu_hwpt_alloc,
  lookupStruct,
  renderStructTable,
  requireStruct,
  structsJson,
} from '../../../../models/kernel/uapi/index.ts';

describe('registry', () => {
  it('looks structs up by kernel name, with or without "struct "', () => {
    expect(lookupStruct('iommu_hwpt_alloc')).toBe(iommu_hwpt_alloc);
    expect(lookupStruct('struct iommu_hwpt_alloc')).toBe(iommu_hwpt_alloc);
    expect(lookupStruct('iommu_hwpt_allocate')).toBeUndefined();
    expect(() => requireStruct('nope')).toThrow(/unknown struct nope/);
  });

  it('holds both designs, each entry citing its header and era', () => {
    expect(allStructs('A').length).toBeGreaterThanOrEqual(20);
    expect(allStructs('B').length).toBeGreaterThanOrEqual(25);
    // vhost-vdpa's own structs serve both designs and are listed under each
    const both = allStructs().filter((d) => d.design === 'both');
    expect(both.map((d) => d.name)).toEqual(['vhost_vring_state', 'vhost_iotlb_msg', 'vhost_msg_v2', 'vhost_vdpa_iova_range']);
    expect(allStructs().length).toBe(allStructs('A').length + allStructs('B').length - both.length);
    expect(citation(requireStruct('iommu_hwpt_alloc'))).toMatch(/^include\/uapi\/linux\/iommufd\.h @ v6\.15/);
    expect(citation(requireStruct('vfio_iommu_type1_nesting_op'))).toBe(
      'include/uapi/linux/vfio.h @ v8 04/10 <20210302203545.436623-5-yi.l.liu@intel.com>',
    );
    for (const d of allStructs()) {
      expect(d.header).toMatch(/^include\/uapi\/linux\/(iommu|iommufd|vfio|ioasid|vhost_types|vhost)\.h$/);
      // posted: A's mails, and B's one projection (Cindy Lu's vhost-vdpa iommufd RFC, vhost.h)
      const bRfc = d.design === 'B' && d.header === 'include/uapi/linux/vhost.h';
      expect(d.source.kind === 'posted').toBe((d.design === 'A' && !/^v\d/.test(d.source.ref)) || bRfc);
    }
  });

  it('includes every struct the design names', () => {
    const required = [
      'iommu_gpasid_bind_data', 'iommu_gpasid_bind_data_vtd', 'iommu_cache_invalidate_info',
      'iommu_inv_pasid_info', 'iommu_inv_addr_info', 'iommu_page_response', 'iommu_fault',
      'iommu_fault_unrecoverable', 'iommu_fault_page_request', 'vfio_iommu_type1_nesting_op',
      'vfio_iommu_type1_info', 'vfio_info_cap_header', 'iommu_nesting_info',
      'vfio_iommu_type1_info_cap_nesting', 'vfio_iommu_type1_dma_map', 'vfio_iommu_type1_dma_unmap',
      'vfio_group_status', 'ioasid_alloc_request', 'ioasid_info', 'iommu_destroy', 'iommu_ioas_alloc',
      'iommu_ioas_map', 'iommu_ioas_unmap', 'iommu_ioas_copy', 'iommu_ioas_iova_ranges',
      'iommu_ioas_allow_iovas', 'iommu_iova_range', 'iommu_option', 'iommu_vfio_ioas', 'iommu_hwpt_alloc',
      'iommu_hwpt_vtd_s1', 'iommu_hw_info', 'iommu_hw_info_vtd', 'iommu_hwpt_invalidate',
      'iommu_hwpt_vtd_s1_invalidate', 'iommu_hwpt_get_dirty_bitmap', 'iommu_hwpt_set_dirty_tracking',
      'iommu_hwpt_pgfault', 'iommu_hwpt_page_response', 'iommu_fault_alloc', 'iommu_viommu_alloc',
      'iommu_vdevice_alloc', 'iommu_ioas_change_process', 'vfio_device_bind_iommufd',
      'vfio_device_attach_iommufd_pt', 'vfio_device_detach_iommufd_pt', 'vfio_device_feature',
    ];
    for (const name of required) expect(lookupStruct(name), name).toBeDefined();
  });
});

describe('ioasid-sim structs output', () => {
  it('--json has exactly the documented shape', () => {
    const json = structsJson();
    expect(Object.keys(json)).toEqual(['structs']);
    expect(json.structs['iommu_gpasid_bind_data']).toEqual({
      size: 72,
      fields: {
        argsz: 0, version: 4, format: 8, addr_width: 12, flags: 16, gpgd: 24, hpasid: 32, gpasid: 40,
        padding: 48, vendor: 56,
      },
      nested: { 'vendor.vtd': 56, 'vendor.vtd.flags': 56, 'vendor.vtd.pat': 64, 'vendor.vtd.emt': 68 },
    });
    expect(json.structs['vfio_device_attach_iommufd_pt']).toEqual({
      size: 16,
      fields: { argsz: 0, flags: 4, pt_id: 8, pasid: 12 },
      nested: {},
    });
    // round-trips through JSON text unchanged (no bigint, no undefined)
    expect(JSON.parse(JSON.stringify(json))).toEqual(json);
  });

  it('the table lists name, size and header in at most 80 columns', () => {
    const text = renderStructTable();
    const lines = text.trimEnd().split('\n');
    expect(lines).toHaveLength(allStructs().length + 2);
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(80);
    expect(text).toMatch(/^iommu_hwpt_alloc\s+48\s+B\s+linux\/iommufd\.h @ v6\.15$/m);
    expect(text).toMatch(/^iommu_nesting_info\s+64\s+A\s+linux\/iommu\.h @ v8 01\/10$/m);
  });
});

describe('uAPI constants next to the structs', () => {
  it('design A values as in iommu.h v5.12 and the v8 mails', () => {
    expect(uapi.IOMMU_GPASID_BIND_VERSION_1).toBe(1);
    expect(uapi.IOMMU_PASID_FORMAT_INTEL_VTD).toBe(1);
    expect(uapi.IOMMU_PASID_FORMAT_LAST).toBe(2);
    expect(uapi.IOMMU_SVA_VTD_GPASID_LAST).toBe(1 << 7);
    expect(uapi.IOMMU_SVA_VTD_GPASID_MTS_MASK).toBe(0b111100);
    expect(uapi.IOMMU_CACHE_INV_TYPE_NR).toBe(3);
    expect(uapi.IOMMU_INV_GRANU_NR).toBe(3);
    expect(uapi.IOMMU_NESTING_FEAT_BIND_PGTBL).toBe(1);
    expect(uapi.IOMMU_NESTING_FEAT_CACHE_INVLD).toBe(2);
    expect(uapi.VFIO_IOMMU_TYPE1_INFO_CAP_NESTING).toBe(4);
    expect(uapi.VFIO_NESTING_OP_MASK).toBe(0xffff);
    expect([
      uapi.VFIO_IOMMU_NESTING_OP_BIND_PGTBL,
      uapi.VFIO_IOMMU_NESTING_OP_UNBIND_PGTBL,
      uapi.VFIO_IOMMU_NESTING_OP_CACHE_INVLD,
    ]).toEqual([0, 1, 2]);
    expect(uapi.VFIO_TYPE1_NESTING_IOMMU).toBe(6);
  });

  it('design B values as in iommufd.h / vfio.h v6.15', () => {
    expect(uapi.IOMMU_HWPT_DATA_VTD_S1).toBe(1);
    // the header's enum iommu_hwpt_invalidate_data_type starts at 0 (the task brief said 1)
    expect(uapi.IOMMU_HWPT_INVALIDATE_DATA_VTD_S1).toBe(0);
    expect(uapi.IOMMU_HWPT_ALLOC_NEST_PARENT).toBe(1);
    expect(uapi.IOMMU_HWPT_ALLOC_DIRTY_TRACKING).toBe(2);
    expect(uapi.IOMMU_HWPT_FAULT_ID_VALID).toBe(4);
    expect(uapi.IOMMU_HWPT_ALLOC_PASID).toBe(8);
    expect(uapi.IOMMU_HW_INFO_TYPE_INTEL_VTD).toBe(1);
    expect(uapi.IOMMU_VTD_S1_WPE).toBe(4);
    expect(uapi.IOMMU_VTD_INV_FLAGS_LEAF).toBe(1);
    expect(uapi.IOMMU_IOAS_MAP_READABLE).toBe(4);
    expect(uapi.IOMMUFD_PAGE_RESP_INVALID).toBe(1);
    expect(uapi.VFIO_DEVICE_ATTACH_PASID).toBe(1);
    expect(uapi.VFIO_DEVICE_DETACH_PASID).toBe(1);
  });
});
