/**
 * Design A: what Liu Yi L's "[Patch v8 xx/10] vfio: expose virtual Shared Virtual Addressing to VMs"
 * (3 Mar 2021, on v5.12-rc1) adds to iommu.h and vfio.h. Posted, never merged.
 * Message-Ids: <20210302203545.436623-N-yi.l.liu@intel.com>, N = patch number + 1.
 *
 * ioctl facts: VFIO_IOMMU_NESTING_OP is `_IO(VFIO_TYPE, VFIO_BASE + 18)` in v8 (0x3b76; +19 in
 * v7) on the container fd: the same number as VFIO_DEVICE_BIND_IOMMUFD on a device cdev.
 */
import { array, defineStruct, flex, member, u16, u32, u64, union, withSource } from '../dsl.ts';
import { IOMMU_H_V5_12 } from './iommu-uapi.ts';
import { VFIO_H_V5_12, vfio_info_cap_header } from './vfio-type1.ts';

const V8_01 = withSource(IOMMU_H_V5_12, {
  kind: 'posted',
  era: 'v8 01/10',
  ref: '<20210302203545.436623-2-yi.l.liu@intel.com>',
  note: '[Patch v8 01/10] iommu: Report domain nesting info',
});
const V8_03 = withSource(VFIO_H_V5_12, {
  kind: 'posted',
  era: 'v8 03/10',
  ref: '<20210302203545.436623-4-yi.l.liu@intel.com>',
  note: '[Patch v8 03/10] vfio/type1: Report iommu nesting info to userspace',
});
const V8_04 = withSource(VFIO_H_V5_12, {
  kind: 'posted',
  era: 'v8 04/10',
  ref: '<20210302203545.436623-5-yi.l.liu@intel.com>',
  note: '[Patch v8 04/10] vfio/type1: Support binding guest page tables to PASID',
});

/** v8 dropped v7's SYSWIDE_PASID (1 << 0) and renumbered these. */
export const IOMMU_NESTING_FEAT_BIND_PGTBL = 1 << 0;
export const IOMMU_NESTING_FEAT_CACHE_INVLD = 1 << 1;

/** v8 added `padding[12]` after Alex Williamson noted the compiler-dependent gap before cap_reg. */
export const iommu_nesting_info_vtd = defineStruct('iommu_nesting_info_vtd', V8_01, [
  u32('flags'),
  array('padding', '__u8', 12),
  u64('cap_reg'),
  u64('ecap_reg'),
]);

/** `format` takes the iommu_gpasid_bind_data values (IOMMU_PASID_FORMAT_INTEL_VTD = 1). */
export const iommu_nesting_info = defineStruct('iommu_nesting_info', V8_01, [
  u32('argsz'),
  u32('flags'),
  u32('format'),
  u32('features'),
  u16('addr_width'),
  u16('pasid_bits'),
  array('padding', '__u8', 12),
  union('vendor', [member('vtd', iommu_nesting_info_vtd)]),
]);

/** capability id in the VFIO_IOMMU_GET_INFO chain (v7 used 3) */
export const VFIO_IOMMU_TYPE1_INFO_CAP_NESTING = 4;

export const vfio_iommu_type1_info_cap_nesting = defineStruct('vfio_iommu_type1_info_cap_nesting', V8_03, [
  member('header', vfio_info_cap_header),
  member('info', iommu_nesting_info),
]);

/** The op lives in the low 16 bits of flags so that data[] stays 8-byte aligned (Alex's review). */
export const VFIO_NESTING_OP_MASK = 0xffff;
/** anonymous enum in v8 04/10; CACHE_INVLD added by 05/10 (<…-6-yi.l.liu@intel.com>) */
export const VFIO_IOMMU_NESTING_OP_BIND_PGTBL = 0;
export const VFIO_IOMMU_NESTING_OP_UNBIND_PGTBL = 1;
export const VFIO_IOMMU_NESTING_OP_CACHE_INVLD = 2;

/** data[] carries iommu_gpasid_bind_data (BIND/UNBIND) or iommu_cache_invalidate_info (CACHE_INVLD). */
export const vfio_iommu_type1_nesting_op = defineStruct('vfio_iommu_type1_nesting_op', V8_04, [
  u32('argsz'),
  u32('flags'),
  flex('data', '__u8'),
]);

export const TUNNEL_V8_STRUCTS = [
  iommu_nesting_info_vtd,
  iommu_nesting_info,
  vfio_iommu_type1_info_cap_nesting,
  vfio_iommu_type1_nesting_op,
] as const;
