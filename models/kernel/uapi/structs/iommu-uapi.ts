/**
 * Design A: the generic IOMMU UAPI, include/uapi/linux/iommu.h as of v5.12 (the base of the v8
 * series). This is the argsz revision (v5.10+); the header was removed from mainline later.
 * Text read at torvalds/linux@8be98d2f2a0a262f8bf8a0bc1fdf522b3c7aab17.
 */
import { array, defineStruct, member, u32, u64, u8, union, type HeaderOrigin } from '../dsl.ts';

export const IOMMU_H_V5_12: HeaderOrigin = {
  header: 'include/uapi/linux/iommu.h',
  design: 'A',
  source: {
    kind: 'merged',
    era: 'v5.12',
    ref: 'v5.12',
    readAt: 'torvalds/linux@8be98d2f2a0a262f8bf8a0bc1fdf522b3c7aab17',
    note: 'argsz revision of the IOMMU UAPI (v5.10 to v5.14)',
  },
};

// ---- faults (reported to userspace only through Eric Auger's VFIO fault region, never by v8)

export const IOMMU_FAULT_PERM_READ = 1 << 0;
export const IOMMU_FAULT_PERM_WRITE = 1 << 1;
export const IOMMU_FAULT_PERM_EXEC = 1 << 2;
export const IOMMU_FAULT_PERM_PRIV = 1 << 3;

/** enum iommu_fault_type */
export const IOMMU_FAULT_DMA_UNRECOV = 1;
export const IOMMU_FAULT_PAGE_REQ = 2;

/** enum iommu_fault_reason */
export const IOMMU_FAULT_REASON_UNKNOWN = 0;
export const IOMMU_FAULT_REASON_PASID_FETCH = 1;
export const IOMMU_FAULT_REASON_BAD_PASID_ENTRY = 2;
export const IOMMU_FAULT_REASON_PASID_INVALID = 3;
export const IOMMU_FAULT_REASON_WALK_EABT = 4;
export const IOMMU_FAULT_REASON_PTE_FETCH = 5;
export const IOMMU_FAULT_REASON_PERMISSION = 6;
export const IOMMU_FAULT_REASON_ACCESS = 7;
export const IOMMU_FAULT_REASON_OOR_ADDRESS = 8;

export const IOMMU_FAULT_UNRECOV_PASID_VALID = 1 << 0;
export const IOMMU_FAULT_UNRECOV_ADDR_VALID = 1 << 1;
export const IOMMU_FAULT_UNRECOV_FETCH_ADDR_VALID = 1 << 2;

export const iommu_fault_unrecoverable = defineStruct('iommu_fault_unrecoverable', IOMMU_H_V5_12, [
  u32('reason'),
  u32('flags'),
  u32('pasid'),
  u32('perm'),
  u64('addr'),
  u64('fetch_addr'),
]);

export const IOMMU_FAULT_PAGE_REQUEST_PASID_VALID = 1 << 0;
export const IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE = 1 << 1;
export const IOMMU_FAULT_PAGE_REQUEST_PRIV_DATA = 1 << 2;
export const IOMMU_FAULT_PAGE_RESPONSE_NEEDS_PASID = 1 << 3;

export const iommu_fault_page_request = defineStruct('iommu_fault_page_request', IOMMU_H_V5_12, [
  u32('flags'),
  u32('pasid'),
  u32('grpid'),
  u32('perm'),
  u64('addr'),
  array('private_data', '__u64', 2),
]);

/** The header's union here is anonymous: `fault.event`, `fault.prm`, `fault.padding2`. */
export const iommu_fault = defineStruct('iommu_fault', IOMMU_H_V5_12, [
  u32('type'),
  u32('padding'),
  union(undefined, [
    member('event', iommu_fault_unrecoverable),
    member('prm', iommu_fault_page_request),
    array('padding2', '__u8', 56),
  ]),
]);

/** enum iommu_page_response_code */
export const IOMMU_PAGE_RESP_SUCCESS = 0;
export const IOMMU_PAGE_RESP_INVALID = 1;
export const IOMMU_PAGE_RESP_FAILURE = 2;
export const IOMMU_PAGE_RESP_VERSION_1 = 1;
export const IOMMU_PAGE_RESP_PASID_VALID = 1 << 0;

export const iommu_page_response = defineStruct('iommu_page_response', IOMMU_H_V5_12, [
  u32('argsz'),
  u32('version'),
  u32('flags'),
  u32('pasid'),
  u32('grpid'),
  u32('code'),
]);

// ---- cache invalidation (v8: VFIO_IOMMU_NESTING_OP / CACHE_INVLD payload)

/** enum iommu_inv_granularity */
export const IOMMU_INV_GRANU_DOMAIN = 0;
export const IOMMU_INV_GRANU_PASID = 1;
export const IOMMU_INV_GRANU_ADDR = 2;
export const IOMMU_INV_GRANU_NR = 3;

export const IOMMU_INV_ADDR_FLAGS_PASID = 1 << 0;
export const IOMMU_INV_ADDR_FLAGS_ARCHID = 1 << 1;
export const IOMMU_INV_ADDR_FLAGS_LEAF = 1 << 2;

export const iommu_inv_addr_info = defineStruct('iommu_inv_addr_info', IOMMU_H_V5_12, [
  u32('flags'),
  u32('archid'),
  u64('pasid'),
  u64('addr'),
  u64('granule_size'),
  u64('nb_granules'),
]);

export const IOMMU_INV_PASID_FLAGS_PASID = 1 << 0;
export const IOMMU_INV_PASID_FLAGS_ARCHID = 1 << 1;

export const iommu_inv_pasid_info = defineStruct('iommu_inv_pasid_info', IOMMU_H_V5_12, [
  u32('flags'),
  u32('archid'),
  u64('pasid'),
]);

export const IOMMU_CACHE_INVALIDATE_INFO_VERSION_1 = 1;
export const IOMMU_CACHE_INV_TYPE_IOTLB = 1 << 0;
export const IOMMU_CACHE_INV_TYPE_DEV_IOTLB = 1 << 1;
export const IOMMU_CACHE_INV_TYPE_PASID = 1 << 2;
export const IOMMU_CACHE_INV_TYPE_NR = 3;

export const iommu_cache_invalidate_info = defineStruct('iommu_cache_invalidate_info', IOMMU_H_V5_12, [
  u32('argsz'),
  u32('version'),
  u8('cache'),
  u8('granularity'),
  array('padding', '__u8', 6),
  union('granu', [member('pasid_info', iommu_inv_pasid_info), member('addr_info', iommu_inv_addr_info)]),
]);

// ---- guest PASID bind (v8: VFIO_IOMMU_NESTING_OP / BIND_PGTBL and UNBIND_PGTBL payload)

export const IOMMU_SVA_VTD_GPASID_SRE = 1 << 0;
export const IOMMU_SVA_VTD_GPASID_EAFE = 1 << 1;
export const IOMMU_SVA_VTD_GPASID_PCD = 1 << 2;
export const IOMMU_SVA_VTD_GPASID_PWT = 1 << 3;
export const IOMMU_SVA_VTD_GPASID_EMTE = 1 << 4;
export const IOMMU_SVA_VTD_GPASID_CD = 1 << 5;
export const IOMMU_SVA_VTD_GPASID_WPE = 1 << 6;
export const IOMMU_SVA_VTD_GPASID_LAST = 1 << 7;
export const IOMMU_SVA_VTD_GPASID_MTS_MASK =
  IOMMU_SVA_VTD_GPASID_CD | IOMMU_SVA_VTD_GPASID_EMTE | IOMMU_SVA_VTD_GPASID_PCD | IOMMU_SVA_VTD_GPASID_PWT;

export const iommu_gpasid_bind_data_vtd = defineStruct('iommu_gpasid_bind_data_vtd', IOMMU_H_V5_12, [
  u64('flags'),
  u32('pat'),
  u32('emt'),
]);

export const IOMMU_GPASID_BIND_VERSION_1 = 1;
export const IOMMU_PASID_FORMAT_INTEL_VTD = 1;
export const IOMMU_PASID_FORMAT_LAST = 2;
export const IOMMU_SVA_GPASID_VAL = 1 << 0;

export const iommu_gpasid_bind_data = defineStruct('iommu_gpasid_bind_data', IOMMU_H_V5_12, [
  u32('argsz'),
  u32('version'),
  u32('format'),
  u32('addr_width'),
  u64('flags'),
  u64('gpgd'),
  u64('hpasid'),
  u64('gpasid'),
  array('padding', '__u8', 8),
  union('vendor', [member('vtd', iommu_gpasid_bind_data_vtd)]),
]);

export const IOMMU_UAPI_STRUCTS = [
  iommu_fault_unrecoverable,
  iommu_fault_page_request,
  iommu_fault,
  iommu_page_response,
  iommu_inv_addr_info,
  iommu_inv_pasid_info,
  iommu_cache_invalidate_info,
  iommu_gpasid_bind_data_vtd,
  iommu_gpasid_bind_data,
] as const;
