import { kfn, type KFn } from '../../../sim/index.ts';
import { PASID_MAX } from '../../hw/vtd/tables.ts';
import type { Device } from '../../kernel/device.ts';
import { EBUSY, EINVAL, ENODEV, ENOMEM, ERANGE } from '../../kernel/errno.ts';
import type { Kernel } from '../../kernel/kernel.ts';
import { Mutex, SpinLock, mutex_lock, mutex_unlock, spin_lock_irqsave, spin_unlock_irqrestore } from '../../kernel/locks.ts';
import type { Mm } from '../../kernel/mm.ts';
import { kfree, kzalloc, type KAlloc } from '../../kernel/slab.ts';
import {
  IOMMU_CACHE_INV_TYPE_DEV_IOTLB,
  IOMMU_CACHE_INV_TYPE_IOTLB,
  IOMMU_CACHE_INV_TYPE_NR,
  IOMMU_FAULT_PAGE_REQ,
  IOMMU_FAULT_PAGE_RESPONSE_NEEDS_PASID,
  IOMMU_INV_ADDR_FLAGS_LEAF,
  IOMMU_INV_ADDR_FLAGS_PASID,
  IOMMU_INV_GRANU_ADDR,
  IOMMU_INV_GRANU_PASID,
  IOMMU_INV_PASID_FLAGS_PASID,
  IOMMU_NESTING_FEAT_BIND_PGTBL,
  IOMMU_NESTING_FEAT_CACHE_INVLD,
  IOMMU_PASID_FORMAT_INTEL_VTD,
  IOMMU_SVA_GPASID_VAL,
  IOMMU_SVA_VTD_GPASID_EAFE,
  IOMMU_SVA_VTD_GPASID_LAST,
  IOMMU_SVA_VTD_GPASID_MTS_MASK,
  IOMMU_SVA_VTD_GPASID_SRE,
  IOMMU_SVA_VTD_GPASID_WPE,
  encode,
  iommu_fault,
  iommu_gpasid_bind_data,
  iommu_nesting_info,
  offsetOfEnd,
  sizeOf,
  type UapiObject,
} from '../../kernel/uapi/index.ts';
import type { IommuCore } from '../iommu.ts';
import { ioasid_attach_data, ioasid_find, ioasid_get, ioasid_put, ioasid_register_notifier, IOASID_NOTIFY_FREE } from '../ioasid.ts';
import { iommu_report_device_fault_v512, iommu_uapi_register } from '../iommu_uapi.ts';
import { IOMMU_FAULT_PAGE_REQUEST_PASID_VALID, type IommuDomain, type IopfGroup } from '../types.ts';
import { cache_tag_assign_domain, cache_tag_unassign_domain } from './cache.ts';
import { qi_submit_sync } from './dmar.ts';
import { domain_attach_iommu, domain_detach_iommu, domain_id_iommu, info_of, type DeviceDomainInfo, type DmarDomain, type IntelIommu } from './iommu.ts';
import { nested_dmar_domain } from './nested.ts';
import { intel_pasid_setup_nested, intel_pasid_tear_down_entry, pasidEntryOf, qi_flush_piotlb } from './pasid.ts';
import type { IntelPrq } from './prq.ts';
import { qiDevIotlbPasid } from './qi-desc.ts';

/**
 * Design A's VT-d entry points, where v8 (on v5.12) had them: intel_svm_bind_gpasid and
 * intel_svm_unbind_gpasid (drivers/iommu/intel/svm.c @ v5.12, with IOASID V4 14/18's reference
 * and FREE notifier), intel_iommu_sva_invalidate (drivers/iommu/intel/iommu.c @ v5.12) and
 * intel_iommu_get_nesting_info ([Patch v8 10/10]).
 *
 * They are thin adapters onto the shared (v6.15) driver: bind keeps v5.12's checks and errnos
 * (format, argsz, vendor flags, 20-bit PASID devices, hpasid range, EBUSY on a double bind, and
 * intel_pasid_setup_nested's addr_width 48/57, gpgd ≤ max_addr, SRE/EAFE support, MTS → EINVAL),
 * then builds a transient nested dmar_domain from the already-copied bind data over the VFIO
 * domain (the nest parent) and sets the PASID entry up with the shared intel_pasid_setup_nested.
 *
 * Era artifacts: the nested domain has its own DID (v5.12 used the second stage's); the shared
 * tear-down drains the PRQ itself (v8 called intel_svm_drain_prq after it: not counted twice);
 * v5.12 held iommu->lock around intel_pasid_setup_nested, the shared function takes it itself;
 * "device_domain_lock" and "pasid_mutex" are gone upstream and modelled here.
 */
const SVM_C: KFn['prov'] = { kind: 'merged', source: 'drivers/iommu/intel/svm.c @ v5.12' };
const PASID_C: KFn['prov'] = { kind: 'merged', source: 'drivers/iommu/intel/pasid.c @ v5.12' };
const IOMMU_C: KFn['prov'] = { kind: 'merged', source: 'drivers/iommu/intel/iommu.c @ v5.12' };
const V8_10: KFn['prov'] = { kind: 'posted', source: '[Patch v8 10/10] iommu/vt-d: Support reporting nesting capability info <20210302203545.436623-11-yi.l.liu@intel.com>' };
const IOASID_14: KFn['prov'] = {
  kind: 'posted',
  source: '[PATCH V4 14/18] iommu/vt-d: Listen to IOASID notifications <1614463286-97618-15-git-send-email-jacob.jun.pan@linux.intel.com>',
};
const fn = (name: string, sig: string, prov: KFn['prov'], uapi?: KFn['uapi']): KFn =>
  kfn({ name, layer: 'intel-iommu', sig, prov, ...(uapi ? { uapi } : {}) });
const FN = {
  bind: fn('intel_svm_bind_gpasid', 'int intel_svm_bind_gpasid(struct iommu_domain *domain, struct device *dev, struct iommu_gpasid_bind_data *data)', SVM_C, {
    param: 'data',
    ctype: 'struct iommu_gpasid_bind_data *',
  }),
  unbind: fn('intel_svm_unbind_gpasid', 'int intel_svm_unbind_gpasid(struct iommu_domain *domain, struct device *dev, u32 pasid)', SVM_C),
  to_sdev: fn('pasid_to_svm_sdev', 'static int pasid_to_svm_sdev(struct device *dev, unsigned int pasid, struct intel_svm **rsvm, struct intel_svm_dev **rsdev)', SVM_C),
  enable_pasid: fn('intel_iommu_enable_pasid', 'int intel_iommu_enable_pasid(struct intel_iommu *iommu, struct device *dev)', IOMMU_C),
  setup_nested: fn(
    'intel_pasid_setup_nested',
    'int intel_pasid_setup_nested(struct intel_iommu *iommu, struct device *dev, pgd_t *gpgd, u32 pasid, struct iommu_gpasid_bind_data_vtd *pasid_data, struct dmar_domain *domain, int addr_width)',
    PASID_C,
    { param: 'pasid_data', ctype: 'struct iommu_gpasid_bind_data_vtd *' },
  ),
  prq_report: fn('intel_svm_prq_report', 'static int intel_svm_prq_report(struct device *dev, struct page_req_dsc *desc)', SVM_C),
  free_async: fn('intel_svm_free_async_fn', 'static void intel_svm_free_async_fn(struct work_struct *work)', IOASID_14),
  invalidate: fn('intel_iommu_sva_invalidate', 'static int intel_iommu_sva_invalidate(struct iommu_domain *domain, struct device *dev, struct iommu_cache_invalidate_info *inv_info)', IOMMU_C, {
    param: 'inv_info',
    ctype: 'struct iommu_cache_invalidate_info *',
  }),
  dev_iotlb_pasid: fn('qi_flush_dev_iotlb_pasid', 'void qi_flush_dev_iotlb_pasid(struct intel_iommu *iommu, u16 sid, u16 pfsid, u32 pasid, u16 qdep, u64 addr, unsigned int size_order)', { kind: 'merged', source: 'drivers/iommu/intel/dmar.c @ v5.12' }),
  nesting_info: fn('intel_iommu_get_nesting_info', 'static int intel_iommu_get_nesting_info(struct iommu_domain *domain, struct iommu_nesting_info *info)', V8_10, {
    param: 'info',
    ctype: 'struct iommu_nesting_info *',
  }),
};

/** SVM_FLAG_GUEST_MODE / SVM_FLAG_GUEST_PASID (include/linux/intel-svm.h) */
const SVM_FLAG_GUEST_MODE = 1 << 3;
const SVM_FLAG_GUEST_PASID = 1 << 4;
const ADDR_WIDTH_5LEVEL = 57;
const ADDR_WIDTH_4LEVEL = 48;

/** struct intel_svm_dev: one device bound to the PASID, with the adapter's nested domain */
export interface IntelSvmDev {
  readonly dev: Device;
  readonly nested: DmarDomain;
  readonly alloc: KAlloc;
}

/** struct intel_svm: a guest PASID bound on some devices (ioasid private data) */
export interface IntelSvm {
  readonly pasid: number;
  gpasid: number;
  flags: number;
  readonly mm: Mm;
  readonly devs: IntelSvmDev[];
  readonly alloc: KAlloc;
}

interface SvmState {
  readonly k: Kernel;
  readonly iommu: IntelIommu;
  readonly core: IommuCore;
  readonly prq: IntelPrq;
  readonly pasid_mutex: Mutex;
  readonly device_domain_lock: SpinLock;
}

/** The live guest-PASID bindings: for tests and leak checks. */
export function intel_svm_bound(k: Kernel, pasid: number): IntelSvm | null {
  return (ioasid_find(k, pasid) as IntelSvm | null) ?? null;
}

// ---- helpers -----------------------------------------------------------------------------------

/** The adapter's kernel-internal constructor: a stage-1 dmar_domain over `s2` for the guest table. */
function nested_domain_from_bind(iommu: IntelIommu, s2: DmarDomain, gpgd: number, addr_width: number, vtdFlags: number, alloc: KAlloc): DmarDomain {
  const sre = (vtdFlags & IOMMU_SVA_VTD_GPASID_SRE) !== 0;
  // the shared layer's stage-1 flags are iommufd's IOMMU_VTD_S1_{SRE=1, EAFE=2, WPE=4}
  const flags = (sre ? 1 : 0) | (vtdFlags & IOMMU_SVA_VTD_GPASID_EAFE ? 2 : 0) | (vtdFlags & IOMMU_SVA_VTD_GPASID_WPE ? 4 : 0);
  return nested_dmar_domain(iommu, s2, { flags, pgtbl_addr: gpgd, addr_width }, {}, alloc, `gpasid-nested(s1 0x${gpgd.toString(16)})`);
}

/** Undoes what the adapter set up for one (device, PASID): tags, DID, the nested domain. */
function nested_domain_release(st: SvmState, info: DeviceDomainInfo, sdev: IntelSvmDev, pasid: number): void {
  const d = sdev.nested;
  cache_tag_unassign_domain(d, info, pasid);
  domain_detach_iommu(d, st.iommu);
  const s2 = d.s2_domain!;
  spin_lock_irqsave(s2.s1_lock);
  const i = s2.s1_domains.indexOf(d);
  if (i >= 0) s2.s1_domains.splice(i, 1);
  spin_unlock_irqrestore(s2.s1_lock);
  kfree(st.k, d.alloc);
}

// ---- page requests of guest PASIDs -------------------------------------------------------------

/**
 * intel_svm_prq_report (v5.12): each page request of a guest-mode PASID becomes a struct
 * iommu_fault (PAGE_REQ) for the device's registered fault handler (iommu_report_device_fault),
 * PASID_VALID | NEEDS_PASID when the request carries a PASID. Era artifact: v5.12's
 * prq_event_thread reported each request as it came; the shared io-pgfault hands over a complete
 * group, so its requests are reported in order and the last one carries the response. A refusal
 * makes io-pgfault answer FAILURE (v5.12's bad_req answered INVALID).
 */
function intel_svm_prq_report(st: SvmState, g: IopfGroup): number {
  return st.k.sim.call(FN.prq_report, () => {
    for (const f of g.faults) {
      let flags = f.flags;
      if (f.flags & IOMMU_FAULT_PAGE_REQUEST_PASID_VALID) flags |= IOMMU_FAULT_PAGE_RESPONSE_NEEDS_PASID;
      const fault = encode(iommu_fault, { type: IOMMU_FAULT_PAGE_REQ, prm: { flags, pasid: f.pasid, grpid: f.grpid, perm: f.perm, addr: BigInt(f.addr) } });
      const ret = iommu_report_device_fault_v512(st.k, g.dev, fault, f === g.last ? g : null);
      if (ret) return ret;
    }
    return 0;
  });
}

/**
 * Era bridge: v5.12 routed a page request by PASID (ioasid_find → intel_svm in GUEST_MODE →
 * intel_svm_prq_report); the shared io-pgfault routes it through the group's attach handle at the
 * PASID. A bound guest PASID publishes a handle whose nested domain reports to the device's fault
 * handler, for as long as some device of the group holds the binding.
 */
function intel_svm_publish_fault_handle(st: SvmState, dev: Device, pasid: number, nested: DmarDomain): void {
  const group = st.core.iommu_group_get(dev);
  if (!group) return;
  nested.iopf_handler = (g) => intel_svm_prq_report(st, g);
  const h = group.pasid_array.get(pasid);
  if (h) h.domain = nested;
  else group.pasid_array.set(pasid, { domain: nested, owner: 'intel_svm(guest mode)' });
}

function intel_svm_unpublish_fault_handle(st: SvmState, svm: IntelSvm, dev: Device, nested: DmarDomain): void {
  const group = st.core.iommu_group_get(dev);
  const h = group?.pasid_array.get(svm.pasid);
  if (!group || !h || h.domain !== nested) return;
  const other = svm.devs.find((d) => d.nested !== nested && group.devices.includes(d.dev));
  if (other) h.domain = other.nested;
  else group.pasid_array.delete(svm.pasid);
}

function pasid_to_svm_sdev(st: SvmState, dev: Device, pasid: number): { err: number; svm: IntelSvm | null; sdev: IntelSvmDev | null } {
  return st.k.sim.call(FN.to_sdev, () => {
    if (pasid >= PASID_MAX || pasid < 0) return { err: -EINVAL, svm: null, sdev: null };
    const svm = ioasid_find(st.k, pasid) as IntelSvm | null;
    if (!svm) return { err: 0, svm: null, sdev: null };
    // "If we found svm for the PASID, there must be at least one device bond."
    if (!svm.devs.length) return { err: -EINVAL, svm: null, sdev: null };
    return { err: 0, svm, sdev: svm.devs.find((d) => d.dev === dev) ?? null };
  });
}

// ---- bind ---------------------------------------------------------------------------------------

/**
 * v5.12's intel_pasid_setup_nested checks, then the shared set-up. Returns the nested domain
 * holding the entry, or an errno.
 */
function setup_nested_v8(st: SvmState, info: DeviceDomainInfo, data: UapiObject, s2: DmarDomain, pasid: number): DmarDomain | number {
  const { iommu, k } = st;
  return k.sim.call(FN.setup_nested, () => {
    k.sim.recorder.validate('iommu_gpasid_bind_data', 'intel_pasid_setup_nested');
    const vtd = ((data.vendor as UapiObject).vtd as UapiObject).flags as bigint;
    const vtdFlags = Number(vtd);
    const gpgd = Number(data.gpgd as bigint);
    const addr_width = data.addr_width as number;
    if (!iommu.caps.nest) return -EINVAL;
    if (!s2.nested_parent) return -EINVAL; // !(domain->flags & DOMAIN_FLAG_NESTING_MODE)
    if (pasidEntryOf(iommu, info, pasid)?.present) return -EBUSY;
    if (addr_width === ADDR_WIDTH_5LEVEL) {
      if (!iommu.caps.fl5lp) return -EINVAL;
    } else if (addr_width !== ADDR_WIDTH_4LEVEL) return -EINVAL;
    // "Guest PGD 0x%llx invalid, max addr 0x%llx": the root must lie in mapped guest RAM
    if (gpgd > s2.max_addr) return -EINVAL;
    // intel_pasid_setup_bind_data
    if (vtdFlags & IOMMU_SVA_VTD_GPASID_SRE && !iommu.caps.srs) return -EINVAL;
    if (vtdFlags & IOMMU_SVA_VTD_GPASID_EAFE && !iommu.caps.eafs) return -EINVAL;
    if (vtdFlags & IOMMU_SVA_VTD_GPASID_MTS_MASK) return -EINVAL; // "No memory type support"
    const alloc = kzalloc(k, 'dmar_domain(gpasid nested)');
    if (!alloc) return -ENOMEM;
    const d = nested_domain_from_bind(iommu, s2, gpgd, addr_width, vtdFlags, alloc);
    let ret = domain_attach_iommu(d, iommu);
    if (ret) {
      kfree(k, alloc);
      return ret;
    }
    ret = cache_tag_assign_domain(d, info, pasid);
    if (!ret) ret = intel_pasid_setup_nested(iommu, info, pasid, d);
    if (ret) {
      cache_tag_unassign_domain(d, info, pasid);
      domain_detach_iommu(d, iommu);
      kfree(k, alloc);
      return ret;
    }
    spin_lock_irqsave(s2.s1_lock);
    s2.s1_domains.push(d);
    spin_unlock_irqrestore(s2.s1_lock);
    return d;
  });
}

function intel_svm_bind_gpasid(st: SvmState, domain: IommuDomain, dev: Device, data: UapiObject): number {
  const { k } = st;
  return k.sim.call(FN.bind, () => {
    k.sim.recorder.validate('iommu_gpasid_bind_data', 'intel_svm_bind_gpasid');
    if (data.format !== IOMMU_PASID_FORMAT_INTEL_VTD) return -EINVAL;
    // IOMMU core ensures argsz is more than the start of the union
    if ((data.argsz as number) < offsetOfEnd(iommu_gpasid_bind_data, 'vendor.vtd')) return -EINVAL;
    const vtdFlags = ((data.vendor as UapiObject).vtd as UapiObject).flags as bigint;
    // Make sure no undefined flags are used in vendor data
    if (vtdFlags & ~BigInt(IOMMU_SVA_VTD_GPASID_LAST - 1)) return -EINVAL;
    // VT-d supports devices with full 20 bit PASIDs only (every modelled device is PCI)
    if (2 ** dev.caps.pasidBits !== PASID_MAX) return -EINVAL;
    const hpasid = Number(data.hpasid as bigint);
    if (hpasid <= 0 || hpasid >= PASID_MAX) return -EINVAL;
    const info = info_of(st.core, dev);
    if (!info) return -EINVAL;
    const s2 = domain as DmarDomain;

    mutex_lock(st.pasid_mutex);
    let ret = 0;
    let svm: IntelSvm | null = null;
    do {
      const r = pasid_to_svm_sdev(st, dev, hpasid);
      ret = r.err;
      if (ret) break;
      svm = r.svm;
      if (r.sdev) {
        // only one SL page table per PASID: no second binding of the same device-PASID
        ret = -EBUSY;
        break;
      }
      if (!svm) {
        const alloc = kzalloc(k, 'intel_svm');
        if (!alloc) {
          ret = -ENOMEM;
          break;
        }
        svm = { pasid: hpasid, gpasid: 0, flags: 0, mm: k.cur().mm, devs: [], alloc };
        if ((data.flags as bigint) & BigInt(IOMMU_SVA_GPASID_VAL)) {
          svm.gpasid = Number(data.gpasid as bigint);
          svm.flags |= SVM_FLAG_GUEST_PASID;
        }
        ioasid_attach_data(k, hpasid, svm);
        // V4 14/18: the binding holds a reference, dropped by intel_svm_drop_pasid
        ioasid_get(k, hpasid);
      }
      const sdevAlloc = kzalloc(k, 'intel_svm_dev');
      if (!sdevAlloc) {
        ret = -ENOMEM;
        break;
      }
      ret = k.sim.call(FN.enable_pasid, () => (info.pasid_supported ? 0 : -EINVAL));
      if (ret) {
        kfree(k, sdevAlloc);
        break;
      }
      const nested = setup_nested_v8(st, info, data, s2, hpasid);
      if (typeof nested === 'number') {
        ret = nested;
        kfree(k, sdevAlloc);
        break;
      }
      svm.flags |= SVM_FLAG_GUEST_MODE;
      svm.devs.push({ dev, nested, alloc: sdevAlloc });
      intel_svm_publish_fault_handle(st, dev, hpasid, nested);
    } while (false);
    // out: a new svm that got no device is undone. V4 14/18 did not add an ioasid_put here: the
    // reference taken above leaks, and the PASID can never be reclaimed (see the fail-nth test).
    if (svm && !svm.devs.length) {
      ioasid_attach_data(k, hpasid, null);
      kfree(k, svm.alloc);
    }
    mutex_unlock(st.pasid_mutex);
    return ret;
  });
}

/** intel_svm_drop_pasid (V4 14/18): detach the private data and drop the binding's reference. */
function intel_svm_drop_pasid(k: Kernel, pasid: number): void {
  ioasid_attach_data(k, pasid, null);
  ioasid_put(k, pasid);
}

function intel_svm_unbind_gpasid(st: SvmState, _domain: IommuDomain, dev: Device, pasid: number): number {
  const { k, iommu } = st;
  return k.sim.call(FN.unbind, () => {
    mutex_lock(st.pasid_mutex);
    const { err, svm, sdev } = pasid_to_svm_sdev(st, dev, pasid);
    if (!err && svm && sdev) {
      // users counts only with aux domains: a PCI device's binding goes at once
      intel_svm_unpublish_fault_handle(st, svm, dev, sdev.nested);
      svm.devs.splice(svm.devs.indexOf(sdev), 1);
      const info = info_of(st.core, dev)!;
      intel_pasid_tear_down_entry(iommu, info, svm.pasid, false, (p) => st.prq.intel_iommu_drain_pasid_prq(dev, p));
      nested_domain_release(st, info, sdev, pasid);
      kfree(k, sdev.alloc);
      if (!svm.devs.length) {
        // the IOASID is not freed here: the IOMMU driver did not allocate it
        intel_svm_drop_pasid(k, pasid);
        kfree(k, svm.alloc);
      }
    }
    mutex_unlock(st.pasid_mutex);
    return err;
  });
}

/**
 * V4 14/18's FREE notification: the owner freed a PASID still bound (a guest is untrusted, or
 * /dev/ioasid was closed first): tear every device's entry down, fault reporting off.
 */
function intel_svm_free_async_fn(st: SvmState, svm: IntelSvm): void {
  const { k, iommu } = st;
  k.sim.call(FN.free_async, () => {
    mutex_lock(st.pasid_mutex);
    for (const sdev of svm.devs) st.core.iommu_group_get(sdev.dev)?.pasid_array.delete(svm.pasid);
    for (const sdev of svm.devs.splice(0)) {
      const info = info_of(st.core, sdev.dev)!;
      intel_pasid_tear_down_entry(iommu, info, svm.pasid, true, () => {});
      nested_domain_release(st, info, sdev, svm.pasid);
      kfree(k, sdev.alloc);
    }
    intel_svm_drop_pasid(k, svm.pasid);
    kfree(k, svm.alloc);
    mutex_unlock(st.pasid_mutex);
  });
}

// ---- cache invalidation ----------------------------------------------------------------------

/** inv_type_granu_table (v5.12): [cache type][granularity] → VT-d granularity, or −EINVAL */
const QI_GRAN_NONG_PASID = 2;
const QI_GRAN_PSI_PASID = 3;
const QI_DEV_IOTLB_GRAN_PASID_SEL = 1;
const INV_TYPE_GRANU_TABLE: readonly (readonly number[])[] = [
  [-EINVAL, QI_GRAN_NONG_PASID, QI_GRAN_PSI_PASID],
  [-EINVAL, -EINVAL, QI_DEV_IOTLB_GRAN_PASID_SEL],
  [-EINVAL, -EINVAL, -EINVAL],
];

/** to_vtd_size: order_base_2 of the number of 4 KiB pages */
function to_vtd_size(granule_size: bigint, nb_granules: bigint): number {
  const nr = Number((granule_size * nb_granules) >> 12n);
  return nr <= 1 ? 0 : Math.ceil(Math.log2(nr));
}

function qi_flush_dev_iotlb_pasid(st: SvmState, info: DeviceDomainInfo, pasid: number, addr: number, size_order: number): void {
  st.k.sim.call(FN.dev_iotlb_pasid, () => {
    const sid = (info.bus << 8) | info.devfn;
    qi_submit_sync(st.iommu, [qiDevIotlbPasid(sid, info.pfsid, pasid, info.ats_qdep, addr, size_order)]);
  });
}

/**
 * intel_iommu_sva_invalidate: the guest's flush, per cache type set. An unsupported type ×
 * granularity combination only logs and stops (no error, nothing flushed); a misaligned address
 * is −ERANGE; the PASID-cache type is −EINVAL. The flush is tagged with the DID of the nested
 * domain that holds (dev, PASID) (v5.12 used the second stage's DID for the same entries).
 */
function intel_iommu_sva_invalidate(st: SvmState, domain: IommuDomain, dev: Device, inv: UapiObject): number {
  const { k, iommu } = st;
  return k.sim.call(FN.invalidate, () => {
    k.sim.recorder.validate('iommu_cache_invalidate_info', 'intel_iommu_sva_invalidate');
    const info = info_of(st.core, dev);
    if (!info) return -ENODEV;
    const s2 = domain as DmarDomain;
    if (!s2.nested_parent) return -EINVAL;
    spin_lock_irqsave(st.device_domain_lock);
    spin_lock_irqsave(iommu.lock);
    let ret = 0;
    const granularity = inv.granularity as number;
    const granu = inv.granu as { addr_info: UapiObject; pasid_info: UapiObject };
    const ai = granu.addr_info;
    const pi = granu.pasid_info;
    const size = granularity === IOMMU_INV_GRANU_ADDR ? to_vtd_size(ai.granule_size as bigint, ai.nb_granules as bigint) : 0;
    const flushes: (() => void)[] = [];
    for (let cache_type = 0; cache_type < IOMMU_CACHE_INV_TYPE_NR; cache_type++) {
      if (!((inv.cache as number) & (1 << cache_type))) continue;
      const vg = INV_TYPE_GRANU_TABLE[cache_type]![granularity]!;
      if (vg === -EINVAL) break; // pr_err_ratelimited("Invalid cache type and granu combination")
      let pasid = 0;
      if (granularity === IOMMU_INV_GRANU_PASID && (pi.flags as number) & IOMMU_INV_PASID_FLAGS_PASID) pasid = Number(pi.pasid as bigint);
      else if (granularity === IOMMU_INV_GRANU_ADDR && (ai.flags as number) & IOMMU_INV_ADDR_FLAGS_PASID) pasid = Number(ai.pasid as bigint);
      const sdev = (ioasid_find(k, pasid) as IntelSvm | null)?.devs.find((d) => d.dev === dev);
      const did = domain_id_iommu(sdev ? sdev.nested : s2, iommu);
      const addr = granularity === IOMMU_INV_GRANU_ADDR ? Number(ai.addr as bigint) : 0;
      const bit = 1 << cache_type;
      if (bit === IOMMU_CACHE_INV_TYPE_IOTLB) {
        if (granularity === IOMMU_INV_GRANU_ADDR && size && addr % 2 ** (12 + size)) {
          ret = -ERANGE; // "User address not aligned"
          break;
        }
        const leaf = ((ai.flags as number) & IOMMU_INV_ADDR_FLAGS_LEAF) !== 0;
        flushes.push(() => qi_flush_piotlb(iommu, did, pasid, addr, vg === QI_GRAN_NONG_PASID ? -1 : 2 ** size, leaf));
        // Always flush device IOTLB if ATS is enabled (falls through)
        if (info.ats_enabled) flushes.push(() => qi_flush_dev_iotlb_pasid(st, info, pasid, addr, granularity === IOMMU_INV_GRANU_PASID ? 64 - 12 : size));
      } else if (bit === IOMMU_CACHE_INV_TYPE_DEV_IOTLB) {
        if (info.ats_enabled) flushes.push(() => qi_flush_dev_iotlb_pasid(st, info, pasid, addr, granularity === IOMMU_INV_GRANU_PASID ? 64 - 12 : size));
      } else {
        ret = -EINVAL; // "Unsupported IOMMU invalidation type"
      }
    }
    // qi_submit_sync takes the queue's own lock: the descriptors go out as they were decided
    spin_unlock_irqrestore(iommu.lock);
    for (const f of flushes) f();
    spin_unlock_irqrestore(st.device_domain_lock);
    return ret;
  });
}

// ---- nesting info ([v8-10]) --------------------------------------------------------------------

const NESTING_INFO_SIZE = sizeOf(iommu_nesting_info);
/** cap: FL1GP bit 56, FL5LP bit 60; ecap: PRS 29, ERS 30, SRS 31, EAFS 34, PASID 40 */
const VTD_CAP_MASK = (1n << 56n) | (1n << 60n);
const VTD_ECAP_MASK = (1n << 29n) | (1n << 30n) | (1n << 31n) | (1n << 34n) | (1n << 40n);

function intel_iommu_get_nesting_info(st: SvmState, domain: IommuDomain, buf: Uint8Array): number {
  const { k, iommu } = st;
  return k.sim.call(FN.nesting_info, () => {
    const s2 = domain as DmarDomain;
    if (!s2.nested_parent) return -ENODEV;
    spin_lock_irqsave(st.device_domain_lock);
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const argsz = view.getUint32(0, true);
    if (argsz < NESTING_INFO_SIZE) {
      // tell the caller the size it needs; not an error
      view.setUint32(0, NESTING_INFO_SIZE, true);
      spin_unlock_irqrestore(st.device_domain_lock);
      return 0;
    }
    const big = (r: { lo: number; hi: number }) => (BigInt(r.hi >>> 0) << 32n) | BigInt(r.lo >>> 0);
    const bytes = encode(iommu_nesting_info, {
      argsz: NESTING_INFO_SIZE,
      flags: 0,
      format: IOMMU_PASID_FORMAT_INTEL_VTD,
      features: IOMMU_NESTING_FEAT_BIND_PGTBL | IOMMU_NESTING_FEAT_CACHE_INVLD,
      addr_width: 30 + 9 * s2.agaw,
      pasid_bits: iommu.caps.pss + 1,
      vendor: { vtd: { flags: 0, cap_reg: big(iommu.vtd.regs.get64(0x08)) & VTD_CAP_MASK, ecap_reg: big(iommu.vtd.regs.get64(0x10)) & VTD_ECAP_MASK } },
    });
    buf.set(bytes);
    spin_unlock_irqrestore(st.device_domain_lock);
    return 0;
  });
}

// ---- registration ----------------------------------------------------------------------------------

/**
 * Hooks the adapter into the IOMMU UAPI layer for this DMAR unit's ops (v5.12: intel_iommu_ops'
 * sva_bind_gpasid / sva_unbind_gpasid / cache_invalidate / domain_get_attr), and registers the
 * IOASID FREE notifier as init_dmars does with V4 14/18 (intel_svm_add_pasid_notifier).
 */
export function intel_svm_v8_init(iommu: IntelIommu, core: IommuCore, prq: IntelPrq): void {
  const k = iommu.k;
  const st: SvmState = {
    k,
    iommu,
    core,
    prq,
    pasid_mutex: new Mutex(k, 'pasid_mutex'),
    device_domain_lock: new SpinLock(k, 'device_domain_lock'),
  };
  iommu_uapi_register(iommu.ops, {
    sva_bind_gpasid: (d, dev, data) => intel_svm_bind_gpasid(st, d, dev, data),
    sva_unbind_gpasid: (d, dev, pasid) => intel_svm_unbind_gpasid(st, d, dev, pasid),
    cache_invalidate: (d, dev, info) => intel_iommu_sva_invalidate(st, d, dev, info),
    domain_get_attr_nesting: (d, buf) => intel_iommu_get_nesting_info(st, d, buf),
  });
  ioasid_register_notifier(k, (code, _id, pdata) => {
    // "If PASID UNBIND happens before FREE, private data of the IOASID should be NULL"
    if (code !== IOASID_NOTIFY_FREE || !pdata) return;
    intel_svm_free_async_fn(st, pdata as IntelSvm);
  });
}
