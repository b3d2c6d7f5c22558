/**
 * Design B: IOAS management, options and the VFIO-compat IOAS (include/uapi/linux/iommufd.h @ v6.15).
 */
import { au64, defineStruct, s32, u16, u32 } from '../dsl.ts';
import { IOMMUFD_H_V6_15 as H } from './iommufd-origin.ts';

export const iommu_destroy = defineStruct('iommu_destroy', H, [u32('size'), u32('id')]);

export const iommu_ioas_alloc = defineStruct('iommu_ioas_alloc', H, [u32('size'), u32('flags'), u32('out_ioas_id')]);

/** An inclusive interval [start, last]. */
export const iommu_iova_range = defineStruct('iommu_iova_range', H, [au64('start'), au64('last')]);

/** allowed_iovas is a user pointer to an array of iommu_iova_range; too small → EMSGSIZE. */
export const iommu_ioas_iova_ranges = defineStruct('iommu_ioas_iova_ranges', H, [
  u32('size'),
  u32('ioas_id'),
  u32('num_iovas'),
  u32('__reserved'),
  au64('allowed_iovas'),
  au64('out_iova_alignment'),
]);

export const iommu_ioas_allow_iovas = defineStruct('iommu_ioas_allow_iovas', H, [
  u32('size'),
  u32('ioas_id'),
  u32('num_iovas'),
  u32('__reserved'),
  au64('allowed_iovas'),
]);

/** enum iommufd_ioas_map_flags (MAP, MAP_FILE and COPY) */
export const IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0;
export const IOMMU_IOAS_MAP_WRITEABLE = 1 << 1;
export const IOMMU_IOAS_MAP_READABLE = 1 << 2;

export const iommu_ioas_map = defineStruct('iommu_ioas_map', H, [
  u32('size'),
  u32('flags'),
  u32('ioas_id'),
  u32('__reserved'),
  au64('user_va'),
  au64('length'),
  au64('iova'),
]);

export const iommu_ioas_map_file = defineStruct('iommu_ioas_map_file', H, [
  u32('size'),
  u32('flags'),
  u32('ioas_id'),
  s32('fd'),
  au64('start'),
  au64('length'),
  au64('iova'),
]);

export const iommu_ioas_copy = defineStruct('iommu_ioas_copy', H, [
  u32('size'),
  u32('flags'),
  u32('dst_ioas_id'),
  u32('src_ioas_id'),
  au64('length'),
  au64('dst_iova'),
  au64('src_iova'),
]);

/** iova 0 + length U64_MAX unmaps everything; length returns the bytes unmapped. */
export const iommu_ioas_unmap = defineStruct('iommu_ioas_unmap', H, [
  u32('size'),
  u32('ioas_id'),
  au64('iova'),
  au64('length'),
]);

/** enum iommufd_option */
export const IOMMU_OPTION_RLIMIT_MODE = 0;
export const IOMMU_OPTION_HUGE_PAGES = 1;
/** enum iommufd_option_ops */
export const IOMMU_OPTION_OP_SET = 0;
export const IOMMU_OPTION_OP_GET = 1;

export const iommu_option = defineStruct('iommu_option', H, [
  u32('size'),
  u32('option_id'),
  u16('op'),
  u16('__reserved'),
  u32('object_id'),
  au64('val64'),
]);

/** enum iommufd_vfio_ioas_op */
export const IOMMU_VFIO_IOAS_GET = 0;
export const IOMMU_VFIO_IOAS_SET = 1;
export const IOMMU_VFIO_IOAS_CLEAR = 2;

export const iommu_vfio_ioas = defineStruct('iommu_vfio_ioas', H, [
  u32('size'),
  u32('ioas_id'),
  u16('op'),
  u16('__reserved'),
]);

/** Moves pin accounting of IOMMU_IOAS_MAP_FILE maps to the calling process (since 6.13). */
export const iommu_ioas_change_process = defineStruct('iommu_ioas_change_process', H, [
  u32('size'),
  u32('__reserved'),
]);

export const IOMMUFD_IOAS_STRUCTS = [
  iommu_destroy,
  iommu_ioas_alloc,
  iommu_iova_range,
  iommu_ioas_iova_ranges,
  iommu_ioas_allow_iovas,
  iommu_ioas_map,
  iommu_ioas_map_file,
  iommu_ioas_copy,
  iommu_ioas_unmap,
  iommu_option,
  iommu_vfio_ioas,
  iommu_ioas_change_process,
] as const;
