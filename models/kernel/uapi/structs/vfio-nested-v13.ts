/**
 * Design A: the vfio-pci device uAPI its era carried page faults on. v8 has no page-request path;
 * the one the era had is Eric Auger's "SMMUv3 Nested Stage Setup (VFIO part)" v13 (11 Apr 2021,
 * on v5.12-rc6; posted, never merged): a DMA fault region the kernel fills with struct iommu_fault,
 * a DMA fault response region userspace fills with struct iommu_page_response, and a device-
 * specific IRQ (eventfd) signalled on new faults. Message-Ids <20210411114659.15051-N-eric.auger@
 * redhat.com>, N = patch number + 1. The region/IRQ info structs are v5.12's (merged), except
 * vfio_irq_info, which Tina Zhang's 07/13 extends with cap_offset.
 *
 * ioctl facts (device fd, `_IO(VFIO_TYPE, VFIO_BASE + n)`): DEVICE_GET_REGION_INFO +8,
 * DEVICE_GET_IRQ_INFO +9, DEVICE_SET_IRQS +10. Region i lives at offset i << 40
 * (VFIO_PCI_OFFSET_SHIFT); device-specific regions start at VFIO_PCI_NUM_REGIONS = 9, device-
 * specific IRQs at VFIO_PCI_NUM_IRQS = 5.
 */
import { defineStruct, flex, member, u32, u64, withSource } from '../dsl.ts';
import { VFIO_H_V5_12, vfio_info_cap_header } from './vfio-type1.ts';

const v13 = (n: number, subject: string) =>
  withSource(VFIO_H_V5_12, { kind: 'posted', era: `EA v13 ${String(n).padStart(2, '0')}/13`, ref: `<20210411114659.15051-${n + 1}-eric.auger@redhat.com>`, note: subject });
const EA_04 = v13(4, '[PATCH v13 04/13] vfio/pci: Add VFIO_REGION_TYPE_NESTED region type');
const EA_07 = v13(7, '[PATCH v13 07/13] vfio: Use capability chains to handle device specific irq (Tina Zhang)');
const EA_12 = v13(12, '[PATCH v13 12/13] vfio/pci: Register a DMA fault response region');

// ---- region and IRQ info (v5.12) --------------------------------------------------------------

export const VFIO_PCI_OFFSET_SHIFT = 40;
export const VFIO_PCI_NUM_REGIONS = 9;
export const VFIO_PCI_NUM_IRQS = 5;

export const VFIO_REGION_INFO_FLAG_READ = 1 << 0;
export const VFIO_REGION_INFO_FLAG_WRITE = 1 << 1;
export const VFIO_REGION_INFO_FLAG_MMAP = 1 << 2;
export const VFIO_REGION_INFO_FLAG_CAPS = 1 << 3;

export const vfio_region_info = defineStruct('vfio_region_info', VFIO_H_V5_12, [
  u32('argsz'),
  u32('flags'),
  u32('index'),
  u32('cap_offset'),
  u64('size'),
  u64('offset'),
]);

export const VFIO_REGION_INFO_CAP_SPARSE_MMAP = 1;
export const VFIO_REGION_INFO_CAP_TYPE = 2;

export const vfio_region_sparse_mmap_area = defineStruct('vfio_region_sparse_mmap_area', VFIO_H_V5_12, [u64('offset'), u64('size')]);

export const vfio_region_info_cap_sparse_mmap = defineStruct('vfio_region_info_cap_sparse_mmap', VFIO_H_V5_12, [
  member('header', vfio_info_cap_header),
  u32('nr_areas'),
  u32('reserved'),
  flex('areas', vfio_region_sparse_mmap_area),
]);

export const vfio_region_info_cap_type = defineStruct('vfio_region_info_cap_type', VFIO_H_V5_12, [
  member('header', vfio_info_cap_header),
  u32('type'),
  u32('subtype'),
]);

export const VFIO_IRQ_SET_DATA_NONE = 1 << 0;
export const VFIO_IRQ_SET_DATA_BOOL = 1 << 1;
export const VFIO_IRQ_SET_DATA_EVENTFD = 1 << 2;
export const VFIO_IRQ_SET_ACTION_MASK = 1 << 3;
export const VFIO_IRQ_SET_ACTION_UNMASK = 1 << 4;
export const VFIO_IRQ_SET_ACTION_TRIGGER = 1 << 5;

export const vfio_irq_set = defineStruct('vfio_irq_set', VFIO_H_V5_12, [
  u32('argsz'),
  u32('flags'),
  u32('index'),
  u32('start'),
  u32('count'),
  flex('data', '__u8'),
]);

// ---- the nested-stage additions (Eric Auger v13) ----------------------------------------------

/** 04/13 defines 4 ("v11 -> v12: update value"; an earlier draft's 2 clashed with TYPE_CCW) */
export const VFIO_REGION_TYPE_NESTED = 4;
export const VFIO_REGION_SUBTYPE_NESTED_DMA_FAULT = 1;
/** 12/13 */
export const VFIO_REGION_SUBTYPE_NESTED_DMA_FAULT_RESPONSE = 2;
export const VFIO_REGION_INFO_CAP_DMA_FAULT = 6;
export const VFIO_REGION_INFO_CAP_DMA_FAULT_RESPONSE = 7;

/** the capability carries the ABI version of the records in the ring (1) */
export const vfio_region_info_cap_fault = defineStruct('vfio_region_info_cap_fault', EA_04, [member('header', vfio_info_cap_header), u32('version')]);
export const vfio_region_info_cap_fault_response = defineStruct('vfio_region_info_cap_fault_response', EA_12, [
  member('header', vfio_info_cap_header),
  u32('version'),
]);

/** tail: written by userspace (the consumer); the rest read-only; head: the kernel's producer index */
export const vfio_region_dma_fault = defineStruct('vfio_region_dma_fault', EA_04, [
  u32('tail'),
  u32('entry_size'),
  u32('nb_entries'),
  u32('offset'),
  u32('head'),
]);

/** head: written by userspace (the producer of responses); tail: the kernel's consumer index */
export const vfio_region_dma_fault_response = defineStruct('vfio_region_dma_fault_response', EA_12, [
  u32('head'),
  u32('entry_size'),
  u32('nb_entries'),
  u32('offset'),
  u32('tail'),
]);

export const VFIO_IRQ_INFO_EVENTFD = 1 << 0;
export const VFIO_IRQ_INFO_MASKABLE = 1 << 1;
export const VFIO_IRQ_INFO_AUTOMASKED = 1 << 2;
export const VFIO_IRQ_INFO_NORESIZE = 1 << 3;
/** 07/13 */
export const VFIO_IRQ_INFO_FLAG_CAPS = 1 << 4;
export const VFIO_IRQ_INFO_CAP_TYPE = 3;
/** 09/13 "vfio: Add new IRQ for DMA fault reporting" */
export const VFIO_IRQ_TYPE_NESTED = 1;
export const VFIO_IRQ_SUBTYPE_DMA_FAULT = 1;

/** 07/13 puts cap_offset at the end: 20 B (v5.12's is 16 B) */
export const vfio_irq_info = defineStruct('vfio_irq_info', EA_07, [u32('argsz'), u32('flags'), u32('index'), u32('count'), u32('cap_offset')]);

export const vfio_irq_info_cap_type = defineStruct('vfio_irq_info_cap_type', EA_07, [member('header', vfio_info_cap_header), u32('type'), u32('subtype')]);

export const VFIO_NESTED_V13_STRUCTS = [
  vfio_region_info,
  vfio_region_sparse_mmap_area,
  vfio_region_info_cap_sparse_mmap,
  vfio_region_info_cap_type,
  vfio_irq_set,
  vfio_region_info_cap_fault,
  vfio_region_info_cap_fault_response,
  vfio_region_dma_fault,
  vfio_region_dma_fault_response,
  vfio_irq_info,
  vfio_irq_info_cap_type,
] as const;
