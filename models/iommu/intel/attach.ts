import { kfn, type KFn } from '../../../sim/index.ts';
import { ENOMEM } from '../../kernel/errno.ts';
import { kfree, kzalloc } from '../../kernel/slab.ts';
import { IOMMU_NO_PASID, type IommuDomain } from '../types.ts';
import { cache_tag_assign_domain, cache_tag_unassign_domain } from './cache.ts';
import { FLPT_DEFAULT_DID, domain_attach_iommu, domain_detach_iommu, domain_id_iommu, type DeviceDomainInfo, type DmarDomain, type IntelIommu } from './iommu.ts';
import { intel_pasid_tear_down_entry } from './pasid.ts';

/**
 * The attachment bookkeeping every domain type shares (drivers/iommu/intel/iommu.c, v6.15): a
 * (device, PASID) joins a domain with a DID on the unit and its cache tags, and leaves it the same
 * way; blocking a RID tears its entry down.
 */
const SRC = 'drivers/iommu/intel/iommu.c @ v6.15';
const fn = (name: string, sig: string): KFn => kfn({ name, layer: 'intel-iommu', sig, prov: { kind: 'merged', source: SRC } });
const FN = {
  block: fn('device_block_translation', 'static void device_block_translation(struct device *dev)'),
  add: fn('domain_add_dev_pasid', 'static struct dev_pasid_info *domain_add_dev_pasid(struct iommu_domain *domain, struct device *dev, ioasid_t pasid)'),
  remove: fn('domain_remove_dev_pasid', 'static void domain_remove_dev_pasid(struct iommu_domain *domain, struct device *dev, ioasid_t pasid)'),
};

/** the DID a domain uses on this unit; the static domains use FLPT_DEFAULT_DID (iommu_domain_did) */
export function iommu_domain_did(d: IommuDomain, iommu: IntelIommu): number {
  return d.type === 'identity' || d.type === 'blocked' ? FLPT_DEFAULT_DID : domain_id_iommu(d as DmarDomain, iommu);
}

/** Tears the RID's entry down and forgets its domain. */
export function device_block_translation(info: DeviceDomainInfo, drain: (pasid: number) => void): void {
  const iommu = info.iommu;
  iommu.sim.call(FN.block, () => {
    intel_pasid_tear_down_entry(iommu, info, IOMMU_NO_PASID, false, drain);
    const d = info.domain;
    if (!d) return;
    cache_tag_unassign_domain(d, info, IOMMU_NO_PASID);
    const i = d.dev_pasids.findIndex((x) => x.dev === info.dev && x.pasid === IOMMU_NO_PASID);
    if (i >= 0) d.dev_pasids.splice(i, 1);
    domain_detach_iommu(d, iommu);
    info.domain = null;
  });
}

/** A DID on the unit, the cache tags, and the attachment record; −errno with nothing left behind. */
export function domain_add_dev_pasid(d: DmarDomain, info: DeviceDomainInfo, pasid: number): number {
  const k = info.iommu.k;
  return info.iommu.sim.call(FN.add, () => {
    const alloc = kzalloc(k, 'dev_pasid_info');
    if (!alloc) return -ENOMEM;
    let ret = domain_attach_iommu(d, info.iommu);
    if (!ret) {
      ret = cache_tag_assign_domain(d, info, pasid);
      if (ret) domain_detach_iommu(d, info.iommu);
    }
    if (ret) {
      kfree(k, alloc);
      return ret;
    }
    d.dev_pasids.push({ dev: info.dev, pasid, alloc });
    return 0;
  });
}

/** The reverse of domain_add_dev_pasid; the static domains keep no per-PASID state. */
export function domain_remove_dev_pasid(old: IommuDomain | null, info: DeviceDomainInfo, pasid: number): void {
  if (!old || old.type === 'identity' || old.type === 'blocked') return;
  info.iommu.sim.call(FN.remove, () => {
    const d = old as DmarDomain;
    const i = d.dev_pasids.findIndex((x) => x.dev === info.dev && x.pasid === pasid);
    if (i < 0) return;
    const [dp] = d.dev_pasids.splice(i, 1);
    cache_tag_unassign_domain(d, info, pasid);
    domain_detach_iommu(d, info.iommu);
    kfree(info.iommu.k, dp!.alloc);
  });
}
