import { kfn, type KFn } from '../../../sim/index.ts';
import type { Device } from '../../kernel/device.ts';
import { EEXIST, EINVAL, ENODEV, ENOMEM, EOPNOTSUPP, ERR_PTR, type ErrPtr } from '../../kernel/errno.ts';
import { kfree } from '../../kernel/slab.ts';
import { encode, iommu_hw_info_vtd, IOMMU_HW_INFO_TYPE_INTEL_VTD } from '../../kernel/uapi/index.ts';
import type { IommuCore } from '../iommu.ts';
import { IOMMU_NO_PASID, IOMMU_READ, IOMMU_WRITE, type DomainOps, type IommuDomain, type IommuOps, type IommuUserData, type IotlbGather } from '../types.ts';
import { device_block_translation, domain_add_dev_pasid, domain_remove_dev_pasid as remove_dev_pasid, iommu_domain_did } from './attach.ts';
import { cache_tag_assign_domain, cache_tag_flush_range, cache_tag_unassign_domain } from './cache.ts';
import {
  IntelIommu,
  TableAllocFailure,
  domain_attach_iommu,
  domain_detach_iommu,
  must_info,
  paging_domain_alloc,
  type DeviceDomainInfo,
  type DmarDomain,
} from './iommu.ts';
import { intel_iommu_domain_alloc_nested, nestedOps } from './nested.ts';
import {
  intel_pasid_alloc_table,
  intel_pasid_replace_first_level,
  intel_pasid_replace_second_level,
  intel_pasid_setup_first_level,
  intel_pasid_setup_pass_through,
  intel_pasid_setup_second_level,
  intel_pasid_setup_sm_context,
  intel_pasid_tear_down_entry,
} from './pasid.ts';
import type { IntelPrq } from './prq.ts';

/**
 * The Intel driver's iommu_ops and domain ops (drivers/iommu/intel/iommu.c, v6.15): probe, the
 * static blocking and identity domains, paging domains of either stage, and the attach paths.
 */
const SRC = 'drivers/iommu/intel/iommu.c @ v6.15';
const fn = (name: string, sig: string): KFn => kfn({ name, layer: 'intel-iommu', sig, prov: { kind: 'merged', source: SRC } });
const FN = {
  probe: fn('intel_iommu_probe_device', 'static struct iommu_device *intel_iommu_probe_device(struct device *dev)'),
  alloc_paging: fn('intel_iommu_domain_alloc_paging_flags', 'static struct iommu_domain *intel_iommu_domain_alloc_paging_flags(struct device *dev, u32 flags, const struct iommu_user_data *user_data)'),
  attach: fn('intel_iommu_attach_device', 'static int intel_iommu_attach_device(struct iommu_domain *domain, struct device *dev)'),
  dmar_attach: fn('dmar_domain_attach_device', 'static int dmar_domain_attach_device(struct dmar_domain *domain, struct device *dev)'),
  blocking_attach: fn('blocking_domain_attach_dev', 'static int blocking_domain_attach_dev(struct iommu_domain *domain, struct device *dev)'),
  blocking_pasid: fn('blocking_domain_set_dev_pasid', 'static int blocking_domain_set_dev_pasid(struct iommu_domain *domain, struct device *dev, ioasid_t pasid, struct iommu_domain *old)'),
  identity_attach: fn('identity_domain_attach_dev', 'static int identity_domain_attach_dev(struct iommu_domain *domain, struct device *dev)'),
  identity_pasid: fn('identity_domain_set_dev_pasid', 'static int identity_domain_set_dev_pasid(struct iommu_domain *domain, struct device *dev, ioasid_t pasid, struct iommu_domain *old)'),
  set_dev_pasid: fn('intel_iommu_set_dev_pasid', 'static int intel_iommu_set_dev_pasid(struct iommu_domain *domain, struct device *dev, ioasid_t pasid, struct iommu_domain *old)'),
  map: fn('intel_iommu_map_pages', 'static int intel_iommu_map_pages(struct iommu_domain *domain, unsigned long iova, phys_addr_t paddr, size_t pgsize, size_t pgcount, int prot, gfp_t gfp, size_t *mapped)'),
  unmap: fn('intel_iommu_unmap_pages', 'static size_t intel_iommu_unmap_pages(struct iommu_domain *domain, unsigned long iova, size_t pgsize, size_t pgcount, struct iommu_iotlb_gather *gather)'),
  tlb_sync: fn('intel_iommu_tlb_sync', 'static void intel_iommu_tlb_sync(struct iommu_domain *domain, struct iommu_iotlb_gather *gather)'),
  free: fn('intel_iommu_domain_free', 'static void intel_iommu_domain_free(struct iommu_domain *domain)'),
  enable_iopf: fn('intel_iommu_enable_iopf', 'static int intel_iommu_enable_iopf(struct device *dev)'),
  disable_iopf: fn('intel_iommu_disable_iopf', 'static void intel_iommu_disable_iopf(struct device *dev)'),
  hw_info: fn('intel_iommu_hw_info', 'static void *intel_iommu_hw_info(struct device *dev, u32 *length, u32 *type)'),
};

/** IOMMU_HWPT_ALLOC_* flags a driver receives (include/uapi/linux/iommufd.h) */
const ALLOC_NEST_PARENT = 1 << 0;
const ALLOC_DIRTY_TRACKING = 1 << 1;
const ALLOC_PASID = 1 << 3;

/** Builds the driver's ops and static domains for one DMAR unit. */
export function intelIommuOps(core: IommuCore, getIommu: () => IntelIommu, getPrq: () => IntelPrq): IommuOps {
  const sim = () => getIommu().sim;
  const infoOf = (dev: Device) => must_info(core, dev);
  const drain = (dev: Device) => (pasid: number) => getPrq().intel_iommu_drain_pasid_prq(dev, pasid);

  const block = (dev: Device): void => device_block_translation(infoOf(dev), drain(dev));
  const domain_remove_dev_pasid = (old: IommuDomain | null, dev: Device, pasid: number): void => remove_dev_pasid(old, infoOf(dev), pasid);

  const blocked: IommuDomain = {
    type: 'blocked',
    owner: null as unknown as IommuOps,
    pgsize_bitmap: 0,
    geometry: { aperture_start: 0, aperture_end: 0 },
    iopf_handler: null,
    alloc: null,
    label: 'blocking_domain',
    ops: {
      attach_dev: (_d, dev) => sim().call(FN.blocking_attach, () => (block(dev), 0)),
      set_dev_pasid: (_d, dev, pasid, old) =>
        sim().call(FN.blocking_pasid, () => {
          const info = infoOf(dev);
          intel_pasid_tear_down_entry(info.iommu, info, pasid, false, drain(dev));
          domain_remove_dev_pasid(old, dev, pasid);
          return 0;
        }),
    },
  };

  const identity: IommuDomain = {
    type: 'identity',
    owner: null as unknown as IommuOps,
    pgsize_bitmap: 0,
    geometry: { aperture_start: 0, aperture_end: 0 },
    iopf_handler: null,
    alloc: null,
    label: 'identity_domain',
    ops: {
      attach_dev: (_d, dev) =>
        sim().call(FN.identity_attach, () => {
          block(dev);
          const info = infoOf(dev);
          return intel_pasid_setup_pass_through(info.iommu, info, IOMMU_NO_PASID);
        }),
      set_dev_pasid: (_d, dev, pasid, old) =>
        sim().call(FN.identity_pasid, () => {
          const info = infoOf(dev);
          if (old) intel_pasid_tear_down_entry(info.iommu, info, pasid, false, drain(dev));
          const ret = intel_pasid_setup_pass_through(info.iommu, info, pasid);
          if (!ret) domain_remove_dev_pasid(old, dev, pasid);
          return ret;
        }),
    },
  };

  const pagingOps: DomainOps = {
    attach_dev: (dom, dev) =>
      sim().call(FN.attach, () => {
        block(dev);
        return sim().call(FN.dmar_attach, () => {
          const d = dom as DmarDomain;
          const info = infoOf(dev);
          const iommu = info.iommu;
          let ret = domain_attach_iommu(d, iommu);
          if (ret) return ret;
          ret = cache_tag_assign_domain(d, info, IOMMU_NO_PASID);
          if (ret) {
            domain_detach_iommu(d, iommu);
            return ret;
          }
          ret = d.use_first_level ? intel_pasid_setup_first_level(iommu, info, d, IOMMU_NO_PASID) : intel_pasid_setup_second_level(iommu, info, d, IOMMU_NO_PASID);
          if (ret) {
            cache_tag_unassign_domain(d, info, IOMMU_NO_PASID);
            domain_detach_iommu(d, iommu);
            return ret;
          }
          info.domain = d;
          d.dev_pasids.push({ dev, pasid: IOMMU_NO_PASID, alloc: null });
          return 0;
        });
      }),
    set_dev_pasid: (dom, dev, pasid, old) =>
      sim().call(FN.set_dev_pasid, () => {
        const d = dom as DmarDomain;
        const info = infoOf(dev);
        const iommu = info.iommu;
        if (!info.pasid_supported) return -EOPNOTSUPP;
        if (d.dirty_tracking) return -EINVAL;
        let ret = domain_add_dev_pasid(d, info, pasid);
        if (ret) return ret;
        if (!old) ret = d.use_first_level ? intel_pasid_setup_first_level(iommu, info, d, pasid) : intel_pasid_setup_second_level(iommu, info, d, pasid);
        else {
          const oldDid = iommu_domain_did(old, iommu);
          ret = d.use_first_level
            ? intel_pasid_replace_first_level(iommu, info, d, pasid, oldDid)
            : intel_pasid_replace_second_level(iommu, info, d, pasid, oldDid);
        }
        if (ret) {
          domain_remove_dev_pasid(d, dev, pasid);
          return ret;
        }
        domain_remove_dev_pasid(old, dev, pasid);
        return 0;
      }),
    map_pages: (dom, iova, paddr, pgsize, pgcount, prot, mapped) =>
      sim().call(FN.map, () => {
        const d = dom as DmarDomain;
        const w = d.writer!;
        // intel_iommu_map raises the mark before it maps, so a failed map leaves it raised
        d.max_addr = Math.max(d.max_addr, iova + pgcount * pgsize);
        for (let i = 0; i < pgcount; i++) {
          const va = iova + i * pgsize;
          try {
            const slot = w.leafSlot(va, pgsize === 0x1000 ? 1 : pgsize === 0x200000 ? 2 : 3, true);
            if (d.iommu.mem.readQword(slot) !== 0 || d.iommu.mem.hi !== 0) return -EEXIST;
            w.mapOne(va, paddr + i * pgsize, pgsize, {
              read: (prot & IOMMU_READ) !== 0,
              write: (prot & IOMMU_WRITE) !== 0,
              user: true,
            });
          } catch (e) {
            if (e instanceof TableAllocFailure || (e as { cause?: unknown }).cause instanceof TableAllocFailure) return -ENOMEM;
            throw e;
          }
          mapped.bytes += pgsize;
        }
        return 0;
      }),
    unmap_pages: (dom, iova, pgsize, pgcount, gather: IotlbGather) =>
      sim().call(FN.unmap, () => {
        const d = dom as DmarDomain;
        const w = d.writer!;
        const level = pgsize === 0x1000 ? 1 : pgsize === 0x200000 ? 2 : 3;
        let done = 0;
        for (let i = 0; i < pgcount; i++) {
          const va = iova + i * pgsize;
          const slot = w.leafSlot(va, level, false);
          if (slot < 0) break;
          const lo = d.iommu.mem.readQword(slot);
          if (lo === 0 && d.iommu.mem.hi === 0) break;
          w.clearLeaf(slot);
          done += pgsize;
          gather.start = Math.min(gather.start, va);
          gather.end = Math.max(gather.end, va + pgsize - 1);
        }
        if (done && d.max_addr === iova + pgcount * pgsize) d.max_addr = iova;
        return done;
      }),
    iotlb_sync: (dom, gather) =>
      sim().call(FN.tlb_sync, () => {
        if (gather.start <= gather.end) cache_tag_flush_range(dom as DmarDomain, gather.start, gather.end, false);
      }),
    iotlb_sync_map: (dom, iova, size) => {
      // caching mode: not-present entries may be cached, so a new mapping needs a flush too
      const d = dom as DmarDomain;
      if (d.iommu.caps.cachingMode) cache_tag_flush_range(d, iova, iova + size - 1, false);
    },
    free: (dom) =>
      sim().call(FN.free, () => {
        const d = dom as DmarDomain;
        if (d.dev_pasids.length) d.iommu.sim.oops(`intel_iommu_domain_free: ${d.label} still attached`);
        for (const pa of d.tablePages.splice(0)) d.iommu.freeTablePage(pa);
        kfree(d.iommu.k, d.alloc);
      }),
  };

  const nested = nestedOps(core, getIommu, getPrq);
  const ops: IommuOps = {
    name: 'intel-iommu',
    blocked_domain: blocked,
    identity_domain: identity,
    enforce_cache_coherency: true,
    capable(_dev, cap) {
      const c = getIommu().caps;
      if (cap === 'CACHE_COHERENCY') return true;
      if (cap === 'ENFORCE_CACHE_COHERENCY') return c.sc;
      if (cap === 'DIRTY_TRACKING') return c.slads;
      return false;
    },
    get_resv_regions() {
      // intel_iommu_get_resv_regions: no RMRRs on this platform; the interrupt window as MSI
      return [{ start: 0xfee0_0000, length: 0x10_0000, type: 'MSI' }];
    },
    max_pasids(dev) {
      const iommu = getIommu();
      return iommu.caps.pasid && dev.caps.pasidBits ? 2 ** Math.min(dev.caps.pasidBits, iommu.caps.pss + 1) : 0;
    },
    domain_alloc_paging_flags(dev, flags, user_data): IommuDomain | ErrPtr {
      return sim().call(FN.alloc_paging, () => {
        const iommu = infoOf(dev).iommu;
        if (user_data) return ERR_PTR(-EOPNOTSUPP);
        if (flags & ~(ALLOC_NEST_PARENT | ALLOC_DIRTY_TRACKING | ALLOC_PASID)) return ERR_PTR(-EOPNOTSUPP);
        const nest = (flags & ALLOC_NEST_PARENT) !== 0;
        const dirty = (flags & ALLOC_DIRTY_TRACKING) !== 0;
        // prefer the first stage unless the caller needs what only the second stage gives
        const first = !nest && !dirty && iommu.caps.flts;
        if (!first) {
          if (!iommu.caps.slts) return ERR_PTR(-EOPNOTSUPP);
          if (nest && !iommu.caps.nest) return ERR_PTR(-EOPNOTSUPP);
          if (dirty && !iommu.caps.slads) return ERR_PTR(-EOPNOTSUPP);
        }
        return paging_domain_alloc({
          iommu,
          ops: pagingOps,
          first_stage: first,
          nested_parent: nest,
          dirty_tracking: false,
          label: `${first ? 'fs' : 'ss'}-domain${nest ? '(nest-parent)' : ''}`,
        });
      });
    },
    domain_alloc_nested(dev, parent, flags, user_data: IommuUserData) {
      return intel_iommu_domain_alloc_nested(infoOf(dev).iommu, dev, parent, flags, user_data, nested);
    },
    hw_info(dev) {
      return sim().call(FN.hw_info, () => {
        const iommu = infoOf(dev).iommu;
        const cap = iommu.vtd.regs.get64(0x08);
        const ecap = iommu.vtd.regs.get64(0x10);
        const big = (r: { lo: number; hi: number }) => (BigInt(r.hi >>> 0) << 32n) | BigInt(r.lo >>> 0);
        return { type: IOMMU_HW_INFO_TYPE_INTEL_VTD, data: encode(iommu_hw_info_vtd, { flags: 0, cap_reg: big(cap), ecap_reg: big(ecap) }) };
      });
    },
    page_response(dev, evt, msg) {
      getPrq().intel_iommu_page_response(dev, evt, msg);
    },
    enable_iopf(dev) {
      return sim().call(FN.enable_iopf, () => {
        const info = infoOf(dev);
        if (!info.pri_supported) return -ENODEV;
        if (info.pri_enabled) return 0;
        const ret = getPrq().iopf.iopf_queue_add_device(dev);
        if (ret) return ret;
        info.pri_enabled = true;
        return 0;
      });
    },
    disable_iopf(dev) {
      sim().call(FN.disable_iopf, () => {
        const info = infoOf(dev);
        if (!info.pri_enabled) return;
        info.pri_enabled = false;
        getPrq().iopf.iopf_queue_remove_device(dev);
      });
    },
  };
  (blocked as { owner: IommuOps }).owner = ops;
  (identity as { owner: IommuOps }).owner = ops;
  return ops;
}

/** intel_iommu_probe_device: device info, its PASID table, and its scalable-mode context entry. */
export function intelProbe(core: IommuCore, iommu: IntelIommu, dev: Device, groupId: number): DeviceDomainInfo {
  return iommu.sim.call(FN.probe, () => {
    const pasidOk = iommu.caps.pasid && dev.caps.pasidBits > 0;
    const info: DeviceDomainInfo = {
      dev,
      iommu,
      bus: dev.bus,
      devfn: dev.devfn,
      pasid_table: intel_pasid_alloc_table(iommu, pasidOk ? dev.caps.pasidBits : 0, dev.name),
      ats_supported: dev.caps.ats && iommu.caps.dt,
      ats_enabled: dev.caps.ats && iommu.caps.dt,
      ats_qdep: 32,
      pfsid: (dev.bus << 8) | dev.devfn,
      pri_supported: dev.caps.pri && iommu.caps.prs,
      pri_enabled: false,
      pasid_supported: pasidOk,
      domain: null,
    };
    intel_pasid_setup_sm_context(iommu, info, () => {
      const pfn = iommu.k.pages.allocPage(`host.${iommu.name}.context-table`, dev.bus);
      return pfn * 4096;
    });
    core.probe(dev, iommu.ops, groupId, info);
    return info;
  });
}
