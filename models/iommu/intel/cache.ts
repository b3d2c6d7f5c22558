import { kfn, type KFn } from '../../../sim/index.ts';
import type { Device } from '../../kernel/device.ts';
import { ENOMEM } from '../../kernel/errno.ts';
import { spin_lock_irqsave, spin_unlock_irqrestore } from '../../kernel/locks.ts';
import { kfree, kzalloc, type KAlloc } from '../../kernel/slab.ts';
import { IOMMU_NO_PASID } from '../types.ts';
import { qi_submit_sync } from './dmar.ts';
import { domain_id_iommu, type DeviceDomainInfo, type DmarDomain, type IntelIommu } from './iommu.ts';
import { QI_IOTLB_DSI, QI_IOTLB_PSI, qiDevIotlb, qiDevIotlbPasid, qiIotlb, qiPiotlb } from './qi-desc.ts';

/**
 * Cache tags (drivers/iommu/intel/cache.c, v6.15): each domain knows which (IOMMU, DID, PASID)
 * IOTLB tags and which device-TLBs may hold its translations, and flushes exactly those. A nested
 * domain also tags its parent, so a change to the stage 2 reaches the nested translations.
 * Flush requests batch up to 16 descriptors behind one wait (qi_batch).
 */
const SRC = 'drivers/iommu/intel/cache.c @ v6.15';
const fn = (name: string, sig: string): KFn => kfn({ name, layer: 'intel-iommu', sig, prov: { kind: 'merged', source: SRC } });
const FN = {
  assign: fn('cache_tag_assign_domain', 'int cache_tag_assign_domain(struct dmar_domain *domain, struct device *dev, ioasid_t pasid)'),
  unassign: fn('cache_tag_unassign_domain', 'void cache_tag_unassign_domain(struct dmar_domain *domain, struct device *dev, ioasid_t pasid)'),
  flush_range: fn('cache_tag_flush_range', 'void cache_tag_flush_range(struct dmar_domain *domain, unsigned long start, unsigned long end, int ih)'),
  flush_all: fn('cache_tag_flush_all', 'void cache_tag_flush_all(struct dmar_domain *domain)'),
  batch_flush: fn('qi_batch_flush_descs', 'static void qi_batch_flush_descs(struct intel_iommu *iommu, struct qi_batch *batch)'),
};

export type CacheTagType = 'iotlb' | 'devtlb' | 'nesting_iotlb' | 'nesting_devtlb';

export interface CacheTag {
  readonly type: CacheTagType;
  readonly iommu: IntelIommu;
  readonly did: number;
  readonly pasid: number;
  /** the device, for device-TLB tags */
  readonly dev: Device | null;
  readonly info: DeviceDomainInfo | null;
  users: number;
  readonly alloc: KAlloc;
}

export const QI_MAX_BATCHED_DESC_COUNT = 16;

function sameTag(t: CacheTag, type: CacheTagType, iommu: IntelIommu, did: number, pasid: number, dev: Device | null): boolean {
  return t.type === type && t.iommu === iommu && t.did === did && t.pasid === pasid && (t.type.endsWith('devtlb') ? t.dev === dev : true);
}

function tagAssign(d: DmarDomain, type: CacheTagType, info: DeviceDomainInfo, did: number, pasid: number): number {
  const dev = type.endsWith('devtlb') ? info.dev : null;
  spin_lock_irqsave(d.cache_lock);
  const found = d.cache_tags.find((t) => sameTag(t, type, info.iommu, did, pasid, dev));
  if (found) {
    found.users++;
    spin_unlock_irqrestore(d.cache_lock);
    return 0;
  }
  spin_unlock_irqrestore(d.cache_lock);
  const alloc = kzalloc(info.iommu.k, 'cache_tag');
  if (!alloc) return -ENOMEM;
  spin_lock_irqsave(d.cache_lock);
  d.cache_tags.push({ type, iommu: info.iommu, did, pasid, dev, info: dev ? info : null, users: 1, alloc });
  spin_unlock_irqrestore(d.cache_lock);
  return 0;
}

function tagUnassign(d: DmarDomain, type: CacheTagType, info: DeviceDomainInfo, did: number, pasid: number): void {
  const dev = type.endsWith('devtlb') ? info.dev : null;
  spin_lock_irqsave(d.cache_lock);
  const i = d.cache_tags.findIndex((t) => sameTag(t, type, info.iommu, did, pasid, dev));
  const t = d.cache_tags[i];
  if (t && --t.users === 0) {
    d.cache_tags.splice(i, 1);
    kfree(info.iommu.k, t.alloc);
  }
  spin_unlock_irqrestore(d.cache_lock);
}

/** The tags one attachment brings: IOTLB (+ device-TLB with ATS), and the parent's for nested. */
function tagsOf(d: DmarDomain, info: DeviceDomainInfo): [DmarDomain, CacheTagType][] {
  const out: [DmarDomain, CacheTagType][] = [[d, 'iotlb']];
  if (info.ats_enabled) out.push([d, 'devtlb']);
  if (d.type === 'nested' && d.s2_domain) {
    out.push([d.s2_domain, 'nesting_iotlb']);
    if (info.ats_enabled) out.push([d.s2_domain, 'nesting_devtlb']);
  }
  return out;
}

export function cache_tag_assign_domain(d: DmarDomain, info: DeviceDomainInfo, pasid: number): number {
  return info.iommu.sim.call(FN.assign, () => {
    const did = domain_id_iommu(d, info.iommu);
    const done: [DmarDomain, CacheTagType][] = [];
    for (const [dom, type] of tagsOf(d, info)) {
      const ret = tagAssign(dom, type, info, did, pasid);
      if (ret) {
        for (const [dd, tt] of done) tagUnassign(dd, tt, info, did, pasid);
        return ret;
      }
      done.push([dom, type]);
    }
    return 0;
  });
}

export function cache_tag_unassign_domain(d: DmarDomain, info: DeviceDomainInfo, pasid: number): void {
  info.iommu.sim.call(FN.unassign, () => {
    const did = domain_id_iommu(d, info.iommu);
    for (const [dom, type] of tagsOf(d, info)) tagUnassign(dom, type, info, did, pasid);
  });
}

/**
 * calculate_psi_aligned_address: the aligned base and address mask a page-selective flush needs
 * to cover [start, end]; a mask of 52 means "everything". The guest's driver has its own copy
 * (models/guest/intel/cache.ts): the guest is another kernel and imports only sim and hw.
 */
export function calculate_psi_aligned_address(start: number, end: number): { addr: number; pages: number; mask: number } {
  const pfn = Math.floor(start / 4096);
  const endPfn = Math.floor(end / 4096);
  const pages = endPfn - pfn + 1;
  let aligned = 1;
  while (aligned < pages) aligned *= 2;
  let mask = Math.log2(aligned);
  if (pfn % aligned !== 0) {
    // the smallest power-of-two block holding both ends
    mask = 0;
    while (Math.floor(pfn / 2 ** mask) !== Math.floor(endPfn / 2 ** mask)) mask++;
    if (mask > 52) mask = 52;
    aligned = 2 ** mask; // aligned_pages = 1UL << mask (the 2024 fix to c4d27ffaa8eb)
  }
  const block = 4096 * 2 ** mask;
  return { addr: Math.floor(start / block) * block, pages: aligned, mask };
}

function batchAdd(iommu: IntelIommu, d: DmarDomain, desc: Int32Array): void {
  d.qi_batch.push(desc);
  if (d.qi_batch.length === QI_MAX_BATCHED_DESC_COUNT) qi_batch_flush_descs(iommu, d);
}

function qi_batch_flush_descs(iommu: IntelIommu, d: DmarDomain): void {
  if (!d.qi_batch.length) return;
  iommu.sim.call(FN.batch_flush, () => {
    qi_submit_sync(iommu, d.qi_batch.splice(0));
  });
}

/**
 * Flushes [start, end] (end = Infinity: everything) from every cache the domain's tags name. IOTLB
 * tags of first-stage and nested domains flush by PASID (P_IOTLB); of second-stage domains by DID
 * (page-selective, or domain-selective when the range is too big). A nesting device-TLB tag cannot
 * know which nested translations a stage-2 change affects, so it flushes the whole device-TLB.
 */
export function cache_tag_flush_range(d: DmarDomain, start: number, end: number, ih: boolean): void {
  d.iommu.sim.call(FN.flush_range, () => flushTags(d, start, end, ih));
}

export function cache_tag_flush_all(d: DmarDomain): void {
  d.iommu.sim.call(FN.flush_all, () => flushTags(d, 0, Infinity, false));
}

function flushTags(d: DmarDomain, start: number, end: number, ih: boolean): void {
  const all = end === Infinity;
  const psi = all ? { addr: 0, pages: -1, mask: 52 } : calculate_psi_aligned_address(start, end);
  spin_lock_irqsave(d.cache_lock);
  let iommu: IntelIommu | null = null;
  for (const tag of d.cache_tags) {
    if (iommu && iommu !== tag.iommu) qi_batch_flush_descs(iommu, d);
    iommu = tag.iommu;
    switch (tag.type) {
      case 'iotlb':
      case 'nesting_iotlb': {
        const firstStage = d.use_first_level || d.type === 'nested';
        if (firstStage) {
          batchAdd(iommu, d, qiPiotlb(tag.did, tag.pasid, psi.addr, psi.mask, ih, psi.pages === -1 || psi.mask > iommu.caps.mamv));
        } else if (psi.pages === -1 || psi.mask > iommu.caps.mamv || !iommu.caps.psi) {
          batchAdd(iommu, d, qiIotlb(QI_IOTLB_DSI, tag.did, 0, 0, false));
        } else {
          batchAdd(iommu, d, qiIotlb(QI_IOTLB_PSI, tag.did, psi.addr, psi.mask, ih));
        }
        break;
      }
      case 'nesting_devtlb':
        devtlbPsi(iommu, d, tag, 0, 52);
        break;
      case 'devtlb':
        devtlbPsi(iommu, d, tag, psi.addr, psi.mask);
        break;
    }
  }
  if (iommu) qi_batch_flush_descs(iommu, d);
  spin_unlock_irqrestore(d.cache_lock);
}

function devtlbPsi(iommu: IntelIommu, d: DmarDomain, tag: CacheTag, addr: number, mask: number): void {
  const info = tag.info!;
  const sid = (info.bus << 8) | info.devfn;
  if (tag.pasid === IOMMU_NO_PASID) batchAdd(iommu, d, qiDevIotlb(sid, info.pfsid, info.ats_qdep, addr, mask));
  else batchAdd(iommu, d, qiDevIotlbPasid(sid, info.pfsid, tag.pasid, info.ats_qdep, addr, mask));
}
