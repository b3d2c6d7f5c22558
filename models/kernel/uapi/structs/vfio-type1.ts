/**
 * Design A: the VFIO container/type1 uAPI, include/uapi/linux/vfio.h as of v5.12.
 *
 * Text read at torvalds/linux@02256acf1e81e42f6338a39020bf2de9807c33d7 (a much newer tree). The
 * only difference for these structs: the newer vfio_iommu_type1_info spells iova_pgsizes
 * `__aligned_u64` and ends in an explicit `__u32 pad`; v5.12 has `__u64` and implicit trailing
 * padding. Both are 24 bytes with the same offsets on x86_64.
 *
 * ioctl facts (numbers are encoded elsewhere): VFIO_TYPE ';' (0x3b), VFIO_BASE 100, all `_IO`.
 * Container: GET_API_VERSION +0, CHECK_EXTENSION +1, SET_IOMMU +2, IOMMU_GET_INFO +12,
 * IOMMU_MAP_DMA +13, IOMMU_UNMAP_DMA +14. Group: GROUP_GET_STATUS +3, GROUP_SET_CONTAINER +4,
 * GROUP_UNSET_CONTAINER +5, GROUP_GET_DEVICE_FD +6.
 */
import { defineStruct, flex, member, u16, u32, u64, type HeaderOrigin } from '../dsl.ts';

export const VFIO_H_V5_12: HeaderOrigin = {
  header: 'include/uapi/linux/vfio.h',
  design: 'A',
  source: {
    kind: 'merged',
    era: 'v5.12',
    ref: 'v5.12',
    readAt: 'torvalds/linux@02256acf1e81e42f6338a39020bf2de9807c33d7',
    note: 'type1 structs unchanged since v5.12 apart from the explicit pad in vfio_iommu_type1_info',
  },
};

export const VFIO_API_VERSION = 0;
/** VFIO_SET_IOMMU / VFIO_CHECK_EXTENSION arguments */
export const VFIO_TYPE1_IOMMU = 1;
export const VFIO_TYPE1v2_IOMMU = 3;
/** "implies v2"; v8 requires it for nesting */
export const VFIO_TYPE1_NESTING_IOMMU = 6;

export const vfio_info_cap_header = defineStruct('vfio_info_cap_header', VFIO_H_V5_12, [
  u16('id'),
  u16('version'),
  u32('next'),
]);

export const VFIO_GROUP_FLAGS_VIABLE = 1 << 0;
export const VFIO_GROUP_FLAGS_CONTAINER_SET = 1 << 1;

export const vfio_group_status = defineStruct('vfio_group_status', VFIO_H_V5_12, [u32('argsz'), u32('flags')]);

export const VFIO_IOMMU_INFO_PGSIZES = 1 << 0;
export const VFIO_IOMMU_INFO_CAPS = 1 << 1;
/** capability ids in the VFIO_IOMMU_GET_INFO chain (NESTING = 4 comes from v8, see tunnel-v8.ts) */
export const VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = 1;
export const VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION = 2;
export const VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL = 3;

export const vfio_iommu_type1_info = defineStruct('vfio_iommu_type1_info', VFIO_H_V5_12, [
  u32('argsz'),
  u32('flags'),
  u64('iova_pgsizes'),
  u32('cap_offset'),
]);

export const vfio_iova_range = defineStruct('vfio_iova_range', VFIO_H_V5_12, [u64('start'), u64('end')]);

export const vfio_iommu_type1_info_cap_iova_range = defineStruct(
  'vfio_iommu_type1_info_cap_iova_range',
  VFIO_H_V5_12,
  [member('header', vfio_info_cap_header), u32('nr_iovas'), u32('reserved'), flex('iova_ranges', vfio_iova_range)],
);

export const VFIO_DMA_MAP_FLAG_READ = 1 << 0;
export const VFIO_DMA_MAP_FLAG_WRITE = 1 << 1;
export const VFIO_DMA_MAP_FLAG_VADDR = 1 << 2;

export const vfio_iommu_type1_dma_map = defineStruct('vfio_iommu_type1_dma_map', VFIO_H_V5_12, [
  u32('argsz'),
  u32('flags'),
  u64('vaddr'),
  u64('iova'),
  u64('size'),
]);

export const VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP = 1 << 0;
export const VFIO_DMA_UNMAP_FLAG_ALL = 1 << 1;
export const VFIO_DMA_UNMAP_FLAG_VADDR = 1 << 2;

export const vfio_iommu_type1_dma_unmap = defineStruct('vfio_iommu_type1_dma_unmap', VFIO_H_V5_12, [
  u32('argsz'),
  u32('flags'),
  u64('iova'),
  u64('size'),
  flex('data', '__u8'),
]);

export const VFIO_TYPE1_STRUCTS = [
  vfio_info_cap_header,
  vfio_group_status,
  vfio_iommu_type1_info,
  vfio_iova_range,
  vfio_iommu_type1_info_cap_iova_range,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
] as const;
