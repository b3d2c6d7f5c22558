import { kfn, type KFn } from '../../../sim/index.ts';
import type { Device } from '../../kernel/device.ts';
import { EBUSY, EINVAL, ENOMEM, EOPNOTSUPP, ERR_PTR, type ErrPtr } from '../../kernel/errno.ts';
import { SpinLock, spin_lock_irqsave, spin_unlock_irqrestore } from '../../kernel/locks.ts';
import { kfree, kzalloc, type KAlloc } from '../../kernel/slab.ts';
import {
  IOMMU_HWPT_DATA_VTD_S1,
  IOMMU_HWPT_INVALIDATE_DATA_VTD_S1,
  IOMMU_VTD_INV_FLAGS_LEAF,
  iommu_hwpt_vtd_s1,
  iommu_hwpt_vtd_s1_invalidate,
} from '../../kernel/uapi/index.ts';
import type { IommuCore } from '../iommu.ts';
import { IOMMU_NO_PASID, type DomainOps, type IommuDomain, type IommuUserData, type IommuUserDataArray } from '../types.ts';
import { iommu_copy_struct_from_user, iommu_copy_struct_from_user_array } from '../user-data.ts';
import { cache_tag_assign_domain, cache_tag_flush_range, cache_tag_unassign_domain } from './cache.ts';
import { domain_attach_iommu, domain_detach_iommu, must_info, type DmarDomain, type IntelIommu } from './iommu.ts';
import { intel_pasid_replace_nested, intel_pasid_setup_nested } from './pasid.ts';
import { device_block_translation, domain_add_dev_pasid, domain_remove_dev_pasid, iommu_domain_did } from './attach.ts';
import type { IntelPrq } from './prq.ts';

/**
 * Nested translation (drivers/iommu/intel/nested.c, v6.15): a stage-1 domain whose page table is
 * the guest's (a GPA), over a nest-parent second stage. `intel_iommu_domain_alloc_nested` is the
 * ~6.13+ ops->domain_alloc_nested (formerly intel_nested_domain_alloc).
 */
const SRC = 'drivers/iommu/intel/nested.c @ v6.15';
const fn = (name: string, sig: string, extra: Partial<KFn> = {}): KFn =>
  kfn({ name, layer: 'intel-iommu', sig, prov: { kind: 'merged', source: SRC }, ...extra });
const FN = {
  alloc: fn(
    'intel_iommu_domain_alloc_nested',
    'struct iommu_domain *intel_iommu_domain_alloc_nested(struct device *dev, struct iommu_domain *parent, u32 flags, const struct iommu_user_data *user_data)',
    { uapi: { param: 'user_data', ctype: 'const struct iommu_user_data *' } },
  ),
  attach: fn('intel_nested_attach_dev', 'static int intel_nested_attach_dev(struct iommu_domain *domain, struct device *dev)'),
  set_dev_pasid: fn('intel_nested_set_dev_pasid', 'static int intel_nested_set_dev_pasid(struct iommu_domain *domain, struct device *dev, ioasid_t pasid, struct iommu_domain *old)'),
  setup: fn('domain_setup_nested', 'static int domain_setup_nested(struct intel_iommu *iommu, struct dmar_domain *domain, struct device *dev, ioasid_t pasid, struct iommu_domain *old)'),
  invalidate: fn(
    'intel_nested_cache_invalidate_user',
    'static int intel_nested_cache_invalidate_user(struct iommu_domain *domain, struct iommu_user_data_array *array)',
    { uapi: { param: 'array', ctype: 'struct iommu_user_data_array *' } },
  ),
  free: fn('intel_nested_domain_free', 'static void intel_nested_domain_free(struct iommu_domain *domain)'),
};

const ALLOC_PASID = 1 << 3;
const U64_MAX = 0xffff_ffff_ffff_ffffn;

export function intel_iommu_domain_alloc_nested(
  iommu: IntelIommu,
  dev: Device,
  parent: IommuDomain,
  flags: number,
  user_data: IommuUserData,
  ops: DomainOps,
): IommuDomain | ErrPtr {
  return iommu.sim.call(FN.alloc, () => {
    if (!iommu.caps.nest || flags & ~ALLOC_PASID) return ERR_PTR(-EOPNOTSUPP);
    const s2 = parent as DmarDomain;
    if (parent.owner !== iommu.ops || !s2.nested_parent) return ERR_PTR(-EINVAL);
    if (user_data.type !== IOMMU_HWPT_DATA_VTD_S1) return ERR_PTR(-EOPNOTSUPP);
    const { err, val } = iommu_copy_struct_from_user(iommu.k, iommu_hwpt_vtd_s1, user_data, IOMMU_HWPT_DATA_VTD_S1, '__reserved');
    if (err) return ERR_PTR(err);
    const alloc = kzalloc(iommu.k, 'dmar_domain(nested)');
    if (!alloc) return ERR_PTR(-ENOMEM);
    void dev;
    const s1 = { flags: Number(val!.flags as bigint), pgtbl_addr: Number(val!.pgtbl_addr as bigint), addr_width: val!.addr_width as number };
    const d = nested_dmar_domain(iommu, s2, s1, ops, alloc, `nested-domain(s1 0x${s1.pgtbl_addr.toString(16)})`);
    spin_lock_irqsave(s2.s1_lock);
    s2.s1_domains.push(d);
    spin_unlock_irqrestore(s2.s1_lock);
    return d;
  });
}

/**
 * A stage-1 dmar_domain over the nest parent `s2` for the guest table `s1` (the fields
 * intel_iommu_domain_alloc_nested fills): one constructor for iommufd's path and design A's adapter.
 */
export function nested_dmar_domain(
  iommu: IntelIommu,
  s2: DmarDomain,
  s1: { flags: number; pgtbl_addr: number; addr_width: number },
  ops: DomainOps,
  alloc: KAlloc,
  label: string,
): DmarDomain {
  return {
    type: 'nested',
    ops,
    owner: iommu.ops,
    pgsize_bitmap: 0,
    geometry: s2.geometry,
    iopf_handler: null,
    alloc,
    label,
    use_first_level: true,
    nested_parent: false,
    dirty_tracking: false,
    force_snooping: false,
    pgd: 0,
    agaw: s2.agaw,
    writer: null,
    max_addr: 0,
    tablePages: [],
    iommu_array: new Map(),
    dev_pasids: [],
    cache_tags: [],
    cache_lock: new SpinLock(iommu.k, `${label}:cache_lock`),
    qi_batch: [],
    s1_domains: [],
    s1_lock: new SpinLock(iommu.k, `${label}:s1_lock`),
    s2_domain: s2,
    s1_cfg: s1,
    iommu,
  };
}

/** The nested domain's ops; a fresh object per driver instance so it can reach its IOMMU and PRQ. */
export function nestedOps(core: IommuCore, getIommu: () => IntelIommu, getPrq: () => IntelPrq): DomainOps {
  const sim = () => getIommu().sim;
  const drain = (dev: Device) => (pasid: number) => getPrq().intel_iommu_drain_pasid_prq(dev, pasid);

  const removeDevPasid = (old: IommuDomain | null, dev: Device, pasid: number): void => domain_remove_dev_pasid(old, must_info(core, dev), pasid);

  const ops: DomainOps = {
    attach_dev: (dom, dev) =>
      sim().call(FN.attach, () => {
        const d = dom as DmarDomain;
        const info = must_info(core, dev);
        const iommu = info.iommu;
        if (info.domain) device_block_translation(info, drain(dev));
        let ret = domain_attach_iommu(d, iommu);
        if (ret) return ret;
        ret = cache_tag_assign_domain(d, info, IOMMU_NO_PASID);
        if (!ret) ret = intel_pasid_setup_nested(iommu, info, IOMMU_NO_PASID, d);
        if (ret) {
          cache_tag_unassign_domain(d, info, IOMMU_NO_PASID);
          domain_detach_iommu(d, iommu);
          return ret;
        }
        info.domain = d;
        d.dev_pasids.push({ dev, pasid: IOMMU_NO_PASID, alloc: null });
        return 0;
      }),
    set_dev_pasid: (dom, dev, pasid, old) =>
      sim().call(FN.set_dev_pasid, () => {
        const d = dom as DmarDomain;
        const info = must_info(core, dev);
        const iommu = info.iommu;
        if (!info.pasid_supported) return -EOPNOTSUPP;
        if (d.s2_domain!.dirty_tracking) return -EINVAL;
        if (d.dev_pasids.some((x) => x.dev === dev && x.pasid === pasid)) return -EBUSY;
        let ret = domain_add_dev_pasid(d, info, pasid);
        if (ret) return ret;
        ret = sim().call(FN.setup, () =>
          old ? intel_pasid_replace_nested(iommu, info, pasid, iommu_domain_did(old, iommu), d) : intel_pasid_setup_nested(iommu, info, pasid, d),
        );
        if (ret) {
          removeDevPasid(d, dev, pasid);
          return ret;
        }
        removeDevPasid(old, dev, pasid);
        return 0;
      }),
    cache_invalidate_user: (dom, array: IommuUserDataArray) =>
      sim().call(FN.invalidate, () => {
        const d = dom as DmarDomain;
        const k = d.iommu.k;
        let processed = 0;
        let ret = 0;
        if (array.type !== IOMMU_HWPT_INVALIDATE_DATA_VTD_S1) ret = -EINVAL;
        for (let index = 0; !ret && index < array.entry_num; index++) {
          const r = iommu_copy_struct_from_user_array(k, iommu_hwpt_vtd_s1_invalidate, array, IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, index, '__reserved');
          if (r.err) {
            ret = r.err;
            break;
          }
          const e = r.val!;
          const flags = e.flags as number;
          const addr = e.addr as bigint;
          const npages = e.npages as bigint;
          k.sim.recorder.validate('iommu_hwpt_vtd_s1_invalidate', 'intel_nested_cache_invalidate_user');
          if (flags & ~IOMMU_VTD_INV_FLAGS_LEAF || (e.__reserved as number) !== 0) {
            ret = -EOPNOTSUPP;
            break;
          }
          if (addr % 4096n !== 0n || (npages === U64_MAX && addr !== 0n)) {
            ret = -EINVAL;
            break;
          }
          if (npages === U64_MAX) cache_tag_flush_range(d, 0, Infinity, (flags & IOMMU_VTD_INV_FLAGS_LEAF) !== 0);
          else if (npages > 0n) cache_tag_flush_range(d, Number(addr), Number(addr + npages * 4096n - 1n), (flags & IOMMU_VTD_INV_FLAGS_LEAF) !== 0);
          processed++;
        }
        array.entry_num = processed;
        return ret;
      }),
    free: (dom) =>
      sim().call(FN.free, () => {
        const d = dom as DmarDomain;
        if (d.dev_pasids.length) sim().oops(`intel_nested_domain_free: ${d.label} still attached`);
        const s2 = d.s2_domain!;
        spin_lock_irqsave(s2.s1_lock);
        s2.s1_domains.splice(s2.s1_domains.indexOf(d), 1);
        spin_unlock_irqrestore(s2.s1_lock);
        kfree(d.iommu.k, d.alloc);
      }),
  };
  return ops;
}
