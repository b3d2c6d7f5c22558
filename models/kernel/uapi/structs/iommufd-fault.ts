/**
 * Design B: the fault queue (read/write records on the fault fd), vIOMMU, vDEVICE and vEVENTQ
 * (include/uapi/linux/iommufd.h @ v6.15).
 */
import { au64, defineStruct, u32 } from '../dsl.ts';
import { IOMMUFD_H_V6_15 as H } from './iommufd-origin.ts';

/** enum iommu_hwpt_pgfault_flags */
export const IOMMU_PGFAULT_FLAGS_PASID_VALID = 1 << 0;
export const IOMMU_PGFAULT_FLAGS_LAST_PAGE = 1 << 1;

/** enum iommu_hwpt_pgfault_perm */
export const IOMMU_PGFAULT_PERM_READ = 1 << 0;
export const IOMMU_PGFAULT_PERM_WRITE = 1 << 1;
export const IOMMU_PGFAULT_PERM_EXEC = 1 << 2;
export const IOMMU_PGFAULT_PERM_PRIV = 1 << 3;

/**
 * One record read from the fault fd (reads must be multiples of 40). The explicit __reserved came
 * with v6.14-rc (QEMU's "Update to Linux v6.14-rc3" shows the change); the offsets are the same
 * as 6.11's implicit padding.
 */
export const iommu_hwpt_pgfault = defineStruct('iommu_hwpt_pgfault', H, [
  u32('flags'),
  u32('dev_id'),
  u32('pasid'),
  u32('grpid'),
  u32('perm'),
  u32('__reserved'),
  au64('addr'),
  u32('length'),
  u32('cookie'),
]);

/** enum iommufd_page_response_code */
export const IOMMUFD_PAGE_RESP_SUCCESS = 0;
export const IOMMUFD_PAGE_RESP_INVALID = 1;

/** One record written to the fault fd (writes must be multiples of 8). */
export const iommu_hwpt_page_response = defineStruct('iommu_hwpt_page_response', H, [u32('cookie'), u32('code')]);

export const iommu_fault_alloc = defineStruct('iommu_fault_alloc', H, [
  u32('size'),
  u32('flags'),
  u32('out_fault_id'),
  u32('out_fault_fd'),
]);

/** enum iommu_viommu_type (6.15) */
export const IOMMU_VIOMMU_TYPE_DEFAULT = 0;
export const IOMMU_VIOMMU_TYPE_ARM_SMMUV3 = 1;

/** 6.15 form, 24 B: 6.16 appends data_len, __reserved, data_uptr. */
export const iommu_viommu_alloc = defineStruct('iommu_viommu_alloc', H, [
  u32('size'),
  u32('flags'),
  u32('type'),
  u32('dev_id'),
  u32('hwpt_id'),
  u32('out_viommu_id'),
]);

/** virt_id: the guest-visible device id (vRID on VT-d, vSID on SMMUv3) */
export const iommu_vdevice_alloc = defineStruct('iommu_vdevice_alloc', H, [
  u32('size'),
  u32('viommu_id'),
  u32('dev_id'),
  u32('out_vdevice_id'),
  au64('virt_id'),
]);

/** enum iommu_veventq_flag */
export const IOMMU_VEVENTQ_FLAG_LOST_EVENTS = 1 << 0;

/** Precedes each vEVENT read from a vEVENTQ fd. */
export const iommufd_vevent_header = defineStruct('iommufd_vevent_header', H, [u32('flags'), u32('sequence')]);

/** enum iommu_veventq_type (6.15) */
export const IOMMU_VEVENTQ_TYPE_DEFAULT = 0;
export const IOMMU_VEVENTQ_TYPE_ARM_SMMUV3 = 1;

export const iommu_veventq_alloc = defineStruct('iommu_veventq_alloc', H, [
  u32('size'),
  u32('flags'),
  u32('viommu_id'),
  u32('type'),
  u32('veventq_depth'),
  u32('out_veventq_id'),
  u32('out_veventq_fd'),
  u32('__reserved'),
]);

export const IOMMUFD_FAULT_STRUCTS = [
  iommu_hwpt_pgfault,
  iommu_hwpt_page_response,
  iommu_fault_alloc,
  iommu_viommu_alloc,
  iommu_vdevice_alloc,
  iommufd_vevent_header,
  iommu_veventq_alloc,
] as const;
