/**
 * Design B: hardware page tables, hardware info, dirty tracking and invalidation, with the Intel
 * VT-d payloads (include/uapi/linux/iommufd.h @ v6.15).
 */
import { array, au64, defineStruct, u32, u8 } from '../dsl.ts';
import { IOMMUFD_H_V6_15 as H } from './iommufd-origin.ts';

/** enum iommufd_hwpt_alloc_flags */
export const IOMMU_HWPT_ALLOC_NEST_PARENT = 1 << 0;
export const IOMMU_HWPT_ALLOC_DIRTY_TRACKING = 1 << 1;
export const IOMMU_HWPT_FAULT_ID_VALID = 1 << 2;
/** 6.15: required on every HWPT attached to a PASID, and on the RID's HWPT too */
export const IOMMU_HWPT_ALLOC_PASID = 1 << 3;

/** enum iommu_hwpt_vtd_s1_flags */
export const IOMMU_VTD_S1_SRE = 1 << 0;
export const IOMMU_VTD_S1_EAFE = 1 << 1;
export const IOMMU_VTD_S1_WPE = 1 << 2;

/** HWPT_ALLOC data for IOMMU_HWPT_DATA_VTD_S1; the driver copies exactly 24 bytes. */
export const iommu_hwpt_vtd_s1 = defineStruct('iommu_hwpt_vtd_s1', H, [
  au64('flags'),
  au64('pgtbl_addr'),
  u32('addr_width'),
  u32('__reserved'),
]);

/** enum iommu_hwpt_data_type */
export const IOMMU_HWPT_DATA_NONE = 0;
export const IOMMU_HWPT_DATA_VTD_S1 = 1;
export const IOMMU_HWPT_DATA_ARM_SMMUV3 = 2;

/**
 * 48 B since 6.11 (fault_id, __reserved2; 40 B before). The kernel's minimum is still the 6.6 form,
 * offsetofend(__reserved) = 24 (reference note: 48/24).
 */
export const iommu_hwpt_alloc = defineStruct('iommu_hwpt_alloc', H, [
  u32('size'),
  u32('flags'),
  u32('dev_id'),
  u32('pt_id'),
  u32('out_hwpt_id'),
  u32('__reserved'),
  u32('data_type'),
  u32('data_len'),
  au64('data_uptr'),
  u32('fault_id'),
  u32('__reserved2'),
]);

/** enum iommu_hw_info_vtd_flags */
export const IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17 = 1 << 0;

export const iommu_hw_info_vtd = defineStruct('iommu_hw_info_vtd', H, [
  u32('flags'),
  u32('__reserved'),
  au64('cap_reg'),
  au64('ecap_reg'),
]);

/** enum iommu_hw_info_type (as of 6.15) */
export const IOMMU_HW_INFO_TYPE_NONE = 0;
export const IOMMU_HW_INFO_TYPE_INTEL_VTD = 1;
export const IOMMU_HW_INFO_TYPE_ARM_SMMUV3 = 2;

/** enum iommufd_hw_capabilities */
export const IOMMU_HW_CAP_DIRTY_TRACKING = 1 << 0;
export const IOMMU_HW_CAP_PCI_PASID_EXEC = 1 << 1;
export const IOMMU_HW_CAP_PCI_PASID_PRIV = 1 << 2;

/** 6.15 form: out_data_type is a plain member (6.17 wraps it in a union with in_data_type). */
export const iommu_hw_info = defineStruct('iommu_hw_info', H, [
  u32('size'),
  u32('flags'),
  u32('dev_id'),
  u32('data_len'),
  au64('data_uptr'),
  u32('out_data_type'),
  u8('out_max_pasid_log2'),
  array('__reserved', '__u8', 3),
  au64('out_capabilities'),
]);

/** enum iommufd_hwpt_set_dirty_tracking_flags */
export const IOMMU_HWPT_DIRTY_TRACKING_ENABLE = 1;

export const iommu_hwpt_set_dirty_tracking = defineStruct('iommu_hwpt_set_dirty_tracking', H, [
  u32('size'),
  u32('flags'),
  u32('hwpt_id'),
  u32('__reserved'),
]);

/** enum iommufd_hwpt_get_dirty_bitmap_flags */
export const IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR = 1;

export const iommu_hwpt_get_dirty_bitmap = defineStruct('iommu_hwpt_get_dirty_bitmap', H, [
  u32('size'),
  u32('hwpt_id'),
  u32('flags'),
  u32('__reserved'),
  au64('iova'),
  au64('length'),
  au64('page_size'),
  au64('data'),
]);

/**
 * enum iommu_hwpt_invalidate_data_type. The header makes VTD_S1 = 0 (the task brief said 1; the
 * header wins). Not to be confused with IOMMU_HWPT_DATA_VTD_S1 = 1 above.
 */
export const IOMMU_HWPT_INVALIDATE_DATA_VTD_S1 = 0;
export const IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3 = 1;

/** enum iommu_hwpt_vtd_s1_invalidate_flags */
export const IOMMU_VTD_INV_FLAGS_LEAF = 1 << 0;

/** One invalidation entry; addr 0 + npages U64_MAX means everything. entry_len must be 24. */
export const iommu_hwpt_vtd_s1_invalidate = defineStruct('iommu_hwpt_vtd_s1_invalidate', H, [
  au64('addr'),
  au64('npages'),
  u32('flags'),
  u32('__reserved'),
]);

/** entry_num is in/out: the kernel writes back how many entries it handled. */
export const iommu_hwpt_invalidate = defineStruct('iommu_hwpt_invalidate', H, [
  u32('size'),
  u32('hwpt_id'),
  au64('data_uptr'),
  u32('data_type'),
  u32('entry_len'),
  u32('entry_num'),
  u32('__reserved'),
]);

export const IOMMUFD_HWPT_STRUCTS = [
  iommu_hwpt_vtd_s1,
  iommu_hwpt_alloc,
  iommu_hw_info_vtd,
  iommu_hw_info,
  iommu_hwpt_set_dirty_tracking,
  iommu_hwpt_get_dirty_bitmap,
  iommu_hwpt_vtd_s1_invalidate,
  iommu_hwpt_invalidate,
] as const;
