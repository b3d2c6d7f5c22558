/**
 * Shared virtual addressing in the guest (drivers/iommu/iommu-sva.c, drivers/iommu/intel/svm.c):
 * a process's page table bound to a device PASID as a first-stage table.
 *
 * - bind: iommu_sva_bind_device → the mm's SVA domain (one per mm and IOMMU, with a secondary-TLB
 *   notifier) → iommu_attach_device_pasid → intel_svm_set_dev_pasid: cache tags (DID
 *   FLPT_DEFAULT_DID for every SVA domain), then intel_pasid_setup_first_level.
 * - rebind: iommu_replace_device_pasid with another process's SVA domain → intel_svm_set_dev_pasid
 *   with `old` → intel_pasid_replace_first_level (a present → present change).
 * - unbind: iommu_sva_unbind_device → iommu_detach_device_pasid → intel_pasid_tear_down_entry.
 * - a PTE change: intel_mm_arch_invalidate_secondary_tlbs → cache_tag_flush_range / _all.
 *
 * The model lets the scenario pick the PASID per binding; Linux gives each mm one global PASID
 * (iommu_sva_alloc_pasid). Uniqueness is not enforced here.
 */
import type { DescWords } from '../../hw/vtd/inv-desc.ts';
import { GUEST_ERRNO, guestFn } from '../fn.ts';
import { FLUSH_ALL_END, type GuestProcess, type SecondaryTlbNotifier } from '../mm.ts';
import { cache_tag_assign_domain, cache_tag_flush_all, cache_tag_flush_range, cache_tag_unassign_domain, type CacheTag, type GuestFlushMode } from './cache.ts';
import type { DeviceDomainInfo, GuestIntelIommu } from './iommu.ts';
import {
  FLPT_DEFAULT_DID,
  PASID_FLAG_FL5LP,
  intel_pasid_replace_first_level,
  intel_pasid_setup_first_level,
  intel_pasid_tear_down_entry,
} from './pasid.ts';

export class SvaDomain {
  readonly tags: CacheTag[] = [];
  readonly batch: DescWords[] = [];
  /** (device, pasid) attachments */
  readonly attached = new Set<string>();
  readonly notifier: SecondaryTlbNotifier;

  constructor(
    readonly iommu: GuestIntelIommu,
    readonly proc: GuestProcess,
    flushMode: () => GuestFlushMode,
  ) {
    // intel_mm_arch_invalidate_secondary_tlbs: mm ranges end exclusive, the IOMMU's inclusive
    this.notifier = (start, end) => {
      if (start === 0 && end === FLUSH_ALL_END) cache_tag_flush_all(iommu, this);
      else cache_tag_flush_range(iommu, this, start, end - 1, false, flushMode());
    };
  }
}

const FN = {
  bind: guestFn('iommu_sva_bind_device', 'struct iommu_sva *iommu_sva_bind_device(struct device *dev, struct mm_struct *mm)', 'drivers/iommu/iommu-sva.c'),
  unbind: guestFn('iommu_sva_unbind_device', 'void iommu_sva_unbind_device(struct iommu_sva *handle)', 'drivers/iommu/iommu-sva.c'),
  replace: guestFn('iommu_replace_device_pasid', 'int iommu_replace_device_pasid(struct iommu_domain *domain, struct device *dev, ioasid_t pasid, struct iommu_attach_handle *handle)', 'drivers/iommu/iommu.c'),
  setDevPasid: guestFn('intel_svm_set_dev_pasid', 'static int intel_svm_set_dev_pasid(struct iommu_domain *domain, struct device *dev, ioasid_t pasid, struct iommu_domain *old)', 'drivers/iommu/intel/svm.c'),
  removeDevPasid: guestFn('blocking_domain_set_dev_pasid', 'static int blocking_domain_set_dev_pasid(struct iommu_domain *domain, struct device *dev, ioasid_t pasid, struct iommu_domain *old)', 'drivers/iommu/intel/iommu.c'),
};

const key = (info: DeviceDomainInfo, pasid: number): string => `${info.dev.sid}:${pasid}`;

/** The SVA bindings of one guest IOMMU. */
export class GuestSva {
  /** (sid:pasid) → the domain attached there */
  readonly attachments = new Map<string, SvaDomain>();
  private readonly domains = new Map<GuestProcess, SvaDomain>();

  constructor(
    readonly iommu: GuestIntelIommu,
    private readonly flushMode: () => GuestFlushMode,
    private readonly la57 = false,
  ) {}

  domainAt(info: DeviceDomainInfo, pasid: number): SvaDomain | undefined {
    return this.attachments.get(key(info, pasid));
  }

  private domainFor(proc: GuestProcess): SvaDomain {
    let d = this.domains.get(proc);
    if (!d) {
      d = new SvaDomain(this.iommu, proc, this.flushMode);
      this.domains.set(proc, d);
      proc.notifiers.add(d.notifier); // mmu_notifier_register
    }
    return d;
  }

  private release(d: SvaDomain): void {
    if (d.attached.size > 0) return;
    d.proc.notifiers.delete(d.notifier);
    this.domains.delete(d.proc);
  }

  private sflags(): number {
    return this.la57 ? PASID_FLAG_FL5LP : 0;
  }

  bind(info: DeviceDomainInfo, pasid: number, proc: GuestProcess): number {
    return this.iommu.sim.call(FN.bind, () => {
      if (!info.pasidTable) return -GUEST_ERRNO.ENODEV;
      if (this.attachments.has(key(info, pasid))) return -GUEST_ERRNO.EBUSY;
      const d = this.domainFor(proc);
      const ret = this.iommu.sim.call(FN.setDevPasid, () => {
        cache_tag_assign_domain(this.iommu, d, info, FLPT_DEFAULT_DID, pasid);
        const r = intel_pasid_setup_first_level(this.iommu, info, proc.pgd, pasid, FLPT_DEFAULT_DID, this.sflags());
        if (r) cache_tag_unassign_domain(this.iommu, d, info, FLPT_DEFAULT_DID, pasid);
        return r;
      });
      if (ret) {
        this.release(d);
        return ret;
      }
      d.attached.add(key(info, pasid));
      this.attachments.set(key(info, pasid), d);
      return 0;
    });
  }

  replace(info: DeviceDomainInfo, pasid: number, proc: GuestProcess): number {
    return this.iommu.sim.call(FN.replace, () => {
      const old = this.attachments.get(key(info, pasid));
      if (!old) return -GUEST_ERRNO.EINVAL;
      if (old.proc === proc) return 0; // iommu_replace_device_pasid: same domain, nothing to do
      const d = this.domainFor(proc);
      const ret = this.iommu.sim.call(FN.setDevPasid, () => {
        cache_tag_assign_domain(this.iommu, d, info, FLPT_DEFAULT_DID, pasid);
        const r = intel_pasid_replace_first_level(this.iommu, info, proc.pgd, pasid, FLPT_DEFAULT_DID, FLPT_DEFAULT_DID, this.sflags());
        if (r) cache_tag_unassign_domain(this.iommu, d, info, FLPT_DEFAULT_DID, pasid);
        else cache_tag_unassign_domain(this.iommu, old, info, FLPT_DEFAULT_DID, pasid); // domain_remove_dev_pasid(old)
        return r;
      });
      if (ret) {
        this.release(d);
        return ret;
      }
      old.attached.delete(key(info, pasid));
      this.release(old);
      d.attached.add(key(info, pasid));
      this.attachments.set(key(info, pasid), d);
      return 0;
    });
  }

  unbind(info: DeviceDomainInfo, pasid: number): number {
    return this.iommu.sim.call(FN.unbind, () => {
      const d = this.attachments.get(key(info, pasid));
      if (!d) return -GUEST_ERRNO.EINVAL;
      this.iommu.sim.call(FN.removeDevPasid, () => {
        intel_pasid_tear_down_entry(this.iommu, info, pasid, false);
        cache_tag_unassign_domain(this.iommu, d, info, FLPT_DEFAULT_DID, pasid);
      });
      d.attached.delete(key(info, pasid));
      this.attachments.delete(key(info, pasid));
      this.release(d);
      return 0;
    });
  }
}
