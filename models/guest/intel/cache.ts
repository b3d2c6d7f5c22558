/**
 * The guest driver's cache tags and range flushes (drivers/iommu/intel/cache.c): a domain knows
 * which (DID, PASID) IOTLB tags and which device-TLBs may hold its translations; a flush puts one
 * descriptor per tag into the domain's qi_batch and submits when 16 are queued or at the end, so
 * the guest waits once per ≤ 16 descriptors (vtd-model §B.3).
 *
 * `flushMode: 'per-page'` is a what-if, not Linux: the same batching, but one page-selective entry
 * per 4 KiB page instead of one aligned PSI per tag. It shows what the backends' `batched`
 * invalidation option would carry for a guest that asked page by page. Linux ('range') sends one
 * entry per tag per flush.
 */
import { encodeDevPiotlbInv, encodePiotlbInv, type DescWords } from '../../hw/vtd/inv-desc.ts';
import { guestFn } from '../fn.ts';
import type { DeviceDomainInfo, GuestIntelIommu } from './iommu.ts';

/** QI_MAX_BATCHED_DESC_COUNT */
export const QI_MAX_BATCHED_DESC_COUNT = 16;
/** MAX_AGAW_PFN_WIDTH: an address mask meaning "everything" */
const MAX_AGAW_PFN_WIDTH = 52;

export type GuestFlushMode = 'range' | 'per-page';

export type CacheTag =
  | { readonly type: 'iotlb'; readonly did: number; readonly pasid: number; users: number }
  | { readonly type: 'devtlb'; readonly info: DeviceDomainInfo; readonly pasid: number; users: number };

/** What a domain needs for flushing: its tags and its batch. */
export interface FlushableDomain {
  readonly tags: CacheTag[];
  readonly batch: DescWords[];
}

const SRC = 'drivers/iommu/intel/cache.c';
const FN = {
  assign: guestFn('cache_tag_assign_domain', 'int cache_tag_assign_domain(struct dmar_domain *domain, struct device *dev, ioasid_t pasid)', SRC),
  unassign: guestFn('cache_tag_unassign_domain', 'void cache_tag_unassign_domain(struct dmar_domain *domain, struct device *dev, ioasid_t pasid)', SRC),
  flushRange: guestFn('cache_tag_flush_range', 'void cache_tag_flush_range(struct dmar_domain *domain, unsigned long start, unsigned long end, int ih)', SRC),
  flushAll: guestFn('cache_tag_flush_all', 'void cache_tag_flush_all(struct dmar_domain *domain)', SRC),
  batchFlush: guestFn('qi_batch_flush_descs', 'static void qi_batch_flush_descs(struct intel_iommu *iommu, struct qi_batch *batch)', SRC),
};

/** cache_tag_assign_domain for a first-stage domain on (device, pasid) with DID `did`. */
export function cache_tag_assign_domain(iommu: GuestIntelIommu, d: FlushableDomain, info: DeviceDomainInfo, did: number, pasid: number): void {
  iommu.sim.call(FN.assign, () => {
    const io = d.tags.find((t) => t.type === 'iotlb' && t.did === did && t.pasid === pasid);
    if (io) io.users++;
    else d.tags.push({ type: 'iotlb', did, pasid, users: 1 });
    if (!info.atsEnabled) return;
    const dt = d.tags.find((t) => t.type === 'devtlb' && t.info === info && t.pasid === pasid);
    if (dt) dt.users++;
    else d.tags.push({ type: 'devtlb', info, pasid, users: 1 });
  });
}

export function cache_tag_unassign_domain(iommu: GuestIntelIommu, d: FlushableDomain, info: DeviceDomainInfo, did: number, pasid: number): void {
  iommu.sim.call(FN.unassign, () => {
    for (let i = d.tags.length - 1; i >= 0; i--) {
      const t = d.tags[i]!;
      const mine = t.type === 'iotlb' ? t.did === did && t.pasid === pasid : t.info === info && t.pasid === pasid;
      if (mine && --t.users === 0) d.tags.splice(i, 1);
    }
  });
}

/**
 * calculate_psi_aligned_address: the aligned base and address mask one PSI needs to cover
 * [start, end] (end inclusive). The host driver's copy is models/iommu/intel/cache.ts: this guest
 * is another kernel and imports only sim and hw.
 */
export function calculate_psi_aligned_address(start: number, end: number): { addr: number; pages: number; mask: number } {
  const pfn = Math.floor(start / 4096);
  const endPfn = Math.floor(end / 4096);
  const pages = endPfn - pfn + 1;
  let aligned = 1;
  while (aligned < pages) aligned *= 2;
  let mask = Math.log2(aligned);
  if (pfn % aligned !== 0) {
    // not aligned to the mask: the smallest power-of-two block holding both ends
    mask = 0;
    while (Math.floor(pfn / 2 ** mask) !== Math.floor(endPfn / 2 ** mask)) mask++;
    if (mask > MAX_AGAW_PFN_WIDTH) mask = MAX_AGAW_PFN_WIDTH;
    aligned = 2 ** mask;
  }
  const block = 4096 * 2 ** mask;
  return { addr: Math.floor(start / block) * block, pages: aligned, mask };
}

function batchAdd(iommu: GuestIntelIommu, d: FlushableDomain, desc: DescWords): void {
  d.batch.push(desc);
  if (d.batch.length === QI_MAX_BATCHED_DESC_COUNT) qi_batch_flush_descs(iommu, d);
}

function qi_batch_flush_descs(iommu: GuestIntelIommu, d: FlushableDomain): void {
  if (d.batch.length === 0) return;
  iommu.sim.call(FN.batchFlush, () => {
    iommu.qi.submit(d.batch.splice(0));
  });
}

/** One aligned block [addr, addr + 2^mask pages) through every tag: P_IOTLB and PASID device-TLB. */
function addTags(iommu: GuestIntelIommu, d: FlushableDomain, addr: number, mask: number, all: boolean, ih: boolean): void {
  const whole = all || mask > iommu.caps.mamv;
  for (const t of d.tags) {
    if (t.type === 'iotlb') {
      // cache_tag_flush_iotlb → qi_batch_add_piotlb (a first-stage domain flushes by PASID)
      batchAdd(iommu, d, whole ? encodePiotlbInv({ g: 2, did: t.did, pasid: t.pasid }) : encodePiotlbInv({ g: 3, did: t.did, pasid: t.pasid, addr, am: mask, ih }));
    } else {
      // cache_tag_flush_devtlb_psi → qi_batch_add_pasid_dev_iotlb
      const info = t.info;
      batchAdd(iommu, d, encodeDevPiotlbInv({ sid: info.dev.sid, pasid: t.pasid, addr: all ? 0 : addr, order: all ? MAX_AGAW_PFN_WIDTH : mask, pfsid: info.pfsid, qdep: info.atsQdep }));
    }
  }
}

/** cache_tag_flush_range: [start, end] inclusive; `mode` 'per-page' is the what-if above. */
export function cache_tag_flush_range(iommu: GuestIntelIommu, d: FlushableDomain, start: number, end: number, ih: boolean, mode: GuestFlushMode = 'range'): void {
  iommu.sim.call(FN.flushRange, () => {
    if (mode === 'per-page') {
      for (let a = Math.floor(start / 4096) * 4096; a <= end; a += 4096) addTags(iommu, d, a, 0, false, ih);
    } else {
      const psi = calculate_psi_aligned_address(start, end);
      addTags(iommu, d, psi.addr, psi.mask, false, ih);
    }
    qi_batch_flush_descs(iommu, d);
  });
}

/** cache_tag_flush_all: everything each tag may hold. */
export function cache_tag_flush_all(iommu: GuestIntelIommu, d: FlushableDomain): void {
  iommu.sim.call(FN.flushAll, () => {
    addTags(iommu, d, 0, MAX_AGAW_PFN_WIDTH, true, false);
    qi_batch_flush_descs(iommu, d);
  });
}
