/**
 * Design B: include/uapi/linux/iommufd.h as of v6.15.
 *
 * Text read at torvalds/linux@b4d90dbc4c1bc4bd3eb2d2989330af0eb95c98e8, which is newer than v6.15.
 * The v6.15 layout is that text minus what came later, each checked against the patch that added
 * it:
 * - iommu_viommu_alloc: data_len, __reserved, data_uptr appended in 6.16 (24 B → 40 B);
 * - iommu_hw_info: `union { in_data_type; out_data_type; }` in 6.17 (v6.15: plain out_data_type,
 *   same offsets);
 * - IOMMU_HW_QUEUE_ALLOC, the Tegra241 CMDQV types and IOMMU_HW_INFO_TYPE_DEFAULT: 6.17.
 *
 * ioctl facts: IOMMUFD_TYPE ';' (0x3b), all `_IO(IOMMUFD_TYPE, nr)`; nr: DESTROY 0x80,
 * IOAS_ALLOC 0x81, IOAS_ALLOW_IOVAS 0x82, IOAS_COPY 0x83, IOAS_IOVA_RANGES 0x84, IOAS_MAP 0x85,
 * IOAS_UNMAP 0x86, OPTION 0x87, VFIO_IOAS 0x88, HWPT_ALLOC 0x89, GET_HW_INFO 0x8a,
 * HWPT_SET_DIRTY_TRACKING 0x8b, HWPT_GET_DIRTY_BITMAP 0x8c, HWPT_INVALIDATE 0x8d,
 * FAULT_QUEUE_ALLOC 0x8e, IOAS_MAP_FILE 0x8f, VIOMMU_ALLOC 0x90, VDEVICE_ALLOC 0x91,
 * IOAS_CHANGE_PROCESS 0x92, VEVENTQ_ALLOC 0x93.
 */
import type { HeaderOrigin } from '../dsl.ts';

export const IOMMUFD_H_V6_15: HeaderOrigin = {
  header: 'include/uapi/linux/iommufd.h',
  design: 'B',
  source: {
    kind: 'merged',
    era: 'v6.15',
    ref: 'v6.15',
    readAt: 'torvalds/linux@b4d90dbc4c1bc4bd3eb2d2989330af0eb95c98e8',
    note: 'newer text with the 6.16/6.17 additions removed',
  },
};
