import { kfn, type KFn } from '../../sim/index.ts';
import type { Device } from '../kernel/device.ts';
import { EBUSY, EFAULT, EINVAL, ENODEV, ENOMEM } from '../kernel/errno.ts';
import { Mutex, mutex_lock, mutex_unlock } from '../kernel/locks.ts';
import { kfree, kzalloc, type KAlloc } from '../kernel/slab.ts';
import type { Kernel } from '../kernel/kernel.ts';
import { uptr, type UserPtr } from '../kernel/mm.ts';
import { copy_from_user } from '../kernel/uaccess.ts';
import {
  IOMMU_CACHE_INVALIDATE_INFO_VERSION_1,
  IOMMU_FAULT_PAGE_REQ,
  IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE,
  IOMMU_FAULT_PAGE_RESPONSE_NEEDS_PASID,
  IOMMU_PAGE_RESP_PASID_VALID,
  IOMMU_PAGE_RESP_VERSION_1,
  IOMMU_CACHE_INV_TYPE_DEV_IOTLB,
  IOMMU_CACHE_INV_TYPE_NR,
  IOMMU_CACHE_INV_TYPE_PASID,
  IOMMU_GPASID_BIND_VERSION_1,
  IOMMU_INV_ADDR_FLAGS_ARCHID,
  IOMMU_INV_ADDR_FLAGS_LEAF,
  IOMMU_INV_ADDR_FLAGS_PASID,
  IOMMU_INV_GRANU_ADDR,
  IOMMU_INV_GRANU_DOMAIN,
  IOMMU_INV_GRANU_NR,
  IOMMU_INV_GRANU_PASID,
  IOMMU_INV_PASID_FLAGS_ARCHID,
  IOMMU_INV_PASID_FLAGS_PASID,
  IOMMU_PASID_FORMAT_LAST,
  IOMMU_SVA_GPASID_VAL,
  decode,
  iommu_cache_invalidate_info,
  iommu_gpasid_bind_data,
  offsetOf,
  offsetOfEnd,
  sizeOf,
  type UapiObject,
} from '../kernel/uapi/index.ts';
import type { IoPgfault } from './io-pgfault.ts';
import type { IommuCore } from './iommu.ts';
import type { IommuDomain, IommuOps, IopfGroup } from './types.ts';
import { ioasid_get_if_owned, ioasid_put } from './ioasid.ts';
import { getU32 } from '../kernel/uapi/le.ts';

/**
 * The IOMMU UAPI layer of drivers/iommu/iommu.c as v8 uses it (v5.12, with IOASID V4 11/18's
 * ownership check): the user pointer VFIO passes down is copied and checked here, once per call,
 * that is once per device of the group, and the typed struct goes to the driver.
 *
 * Era artifact: the v5.12 iommu_ops had sva_bind_gpasid / sva_unbind_gpasid / cache_invalidate
 * and iommu_domain_get_attr(DOMAIN_ATTR_NESTING); the shared (v6.15) IommuOps has none of them, so
 * the driver's A-side adapter (intel/svm_v8.ts) registers them here per IommuOps.
 */
const CORE_V512: KFn['prov'] = { kind: 'merged', source: 'drivers/iommu/iommu.c @ v5.12' };
const V8_01: KFn['prov'] = { kind: 'posted', source: '[Patch v8 01/10] iommu: Report domain nesting info <20210302203545.436623-2-yi.l.liu@intel.com>' };
const IOASID_11: KFn['prov'] = {
  kind: 'posted',
  source: '[PATCH V4 11/18] iommu/ioasid: Add ownership check in guest bind <1614463286-97618-12-git-send-email-jacob.jun.pan@linux.intel.com>',
};
const fn = (name: string, sig: string, prov: KFn['prov'], uapi?: KFn['uapi']): KFn =>
  kfn({ name, layer: 'iommu-uapi', sig, prov, ...(uapi ? { uapi } : {}) });

const USER_PTR = (param: string) => ({ param, ctype: 'void __user *' });
const FN = {
  bind: fn('iommu_uapi_sva_bind_gpasid', 'int iommu_uapi_sva_bind_gpasid(struct iommu_domain *domain, struct device *dev, void __user *udata)', IOASID_11, USER_PTR('udata')),
  prepare: fn('iommu_sva_prepare_bind_data', 'static int iommu_sva_prepare_bind_data(void __user *udata, struct iommu_gpasid_bind_data *data)', CORE_V512, USER_PTR('udata')),
  check_bind: fn('iommu_check_bind_data', 'static int iommu_check_bind_data(struct iommu_gpasid_bind_data *data)', CORE_V512, {
    param: 'data',
    ctype: 'struct iommu_gpasid_bind_data *',
  }),
  unbind_uapi: fn('iommu_uapi_sva_unbind_gpasid', 'int iommu_uapi_sva_unbind_gpasid(struct iommu_domain *domain, struct device *dev, void __user *udata)', IOASID_11, USER_PTR('udata')),
  unbind: fn('iommu_sva_unbind_gpasid', 'int iommu_sva_unbind_gpasid(struct iommu_domain *domain, struct device *dev, ioasid_t pasid)', CORE_V512),
  invalidate: fn('iommu_uapi_cache_invalidate', 'int iommu_uapi_cache_invalidate(struct iommu_domain *domain, struct device *dev, void __user *uinfo)', CORE_V512, USER_PTR('uinfo')),
  check_invl: fn('iommu_check_cache_invl_data', 'static int iommu_check_cache_invl_data(struct iommu_cache_invalidate_info *info)', CORE_V512, {
    param: 'info',
    ctype: 'struct iommu_cache_invalidate_info *',
  }),
  get_attr: fn('iommu_domain_get_attr', 'int iommu_domain_get_attr(struct iommu_domain *domain, enum iommu_attr attr, void *data)', V8_01, { param: 'data', ctype: 'void *' }),
};

/** The v5.12 iommu_ops members design A needs, as the driver's adapter provides them. */
export interface IommuUapiOps {
  sva_bind_gpasid(domain: IommuDomain, dev: Device, data: UapiObject): number;
  /** [v8-06] "iommu: Pass domain to sva_unbind_gpasid()" added the domain argument */
  sva_unbind_gpasid(domain: IommuDomain, dev: Device, pasid: number): number;
  cache_invalidate(domain: IommuDomain, dev: Device, info: UapiObject): number;
  /** domain_get_attr(DOMAIN_ATTR_NESTING): fills a struct iommu_nesting_info (64 B buffer) */
  domain_get_attr_nesting(domain: IommuDomain, info: Uint8Array): number;
}

const uapiOps = new WeakMap<IommuOps, IommuUapiOps>();

export function iommu_uapi_register(ops: IommuOps, uops: IommuUapiOps): void {
  uapiOps.set(ops, uops);
}

function opsOf(domain: IommuDomain): IommuUapiOps | undefined {
  return uapiOps.get(domain.owner);
}

/** enum iommu_attr (v5.12): the one v8 adds */
export const DOMAIN_ATTR_NESTING = 'DOMAIN_ATTR_NESTING';

export function iommu_domain_get_attr(k: Kernel, domain: IommuDomain, attr: typeof DOMAIN_ATTR_NESTING, data: Uint8Array): number {
  return k.sim.call(FN.get_attr, () => {
    const ops = opsOf(domain);
    if (!ops || attr !== DOMAIN_ATTR_NESTING) return -EINVAL;
    return ops.domain_get_attr_nesting(domain, data);
  });
}

// ---- bind / unbind ------------------------------------------------------------------------------

function iommu_check_bind_data(k: Kernel, data: UapiObject): number {
  return k.sim.call(FN.check_bind, () => {
    k.sim.recorder.validate('iommu_gpasid_bind_data', 'iommu_check_bind_data');
    if (data.version !== IOMMU_GPASID_BIND_VERSION_1) return -EINVAL;
    // Check the range of supported formats
    if ((data.format as number) >= IOMMU_PASID_FORMAT_LAST) return -EINVAL;
    // Check all flags
    if ((data.flags as bigint) & ~BigInt(IOMMU_SVA_GPASID_VAL)) return -EINVAL;
    // Check reserved padding fields
    if ((data.padding as Uint8Array).some((b) => b !== 0)) return -EINVAL;
    return 0;
  });
}

/**
 * iommu_sva_prepare_bind_data: copy minsz (offsetof vendor = 56 B) to learn argsz, then the rest
 * up to min(argsz, sizeof) = 72 B; a newer, larger struct is truncated, never rejected here.
 */
function iommu_sva_prepare_bind_data(k: Kernel, udata: UserPtr): { err: number; data: UapiObject | null } {
  return k.sim.call(FN.prepare, () => {
    const size = sizeOf(iommu_gpasid_bind_data);
    const buf = new Uint8Array(size);
    // No new spaces can be added before the variable sized union
    const minsz = offsetOf(iommu_gpasid_bind_data, 'vendor');
    if (copy_from_user(k, buf, udata, minsz)) return { err: -EFAULT, data: null };
    const argsz = getU32(buf, 0);
    // Fields before the variable size union are mandatory
    if (argsz < minsz) return { err: -EINVAL, data: null };
    const rest = Math.min(argsz, size) - minsz;
    if (copy_from_user(k, buf, uptr(udata + minsz), rest, minsz)) return { err: -EFAULT, data: null };
    const data = decode(iommu_gpasid_bind_data, buf);
    const err = iommu_check_bind_data(k, data);
    return { err, data: err ? null : data };
  });
}

/** Called by VFIO once per device of the group, with the same user pointer each time. */
export function iommu_uapi_sva_bind_gpasid(k: Kernel, domain: IommuDomain, dev: Device, udata: UserPtr): number {
  return k.sim.call(FN.bind, () => {
    const ops = opsOf(domain);
    if (!ops) return -ENODEV;
    const { err, data } = iommu_sva_prepare_bind_data(k, udata);
    if (err) return err;
    const hpasid = Number(data!.hpasid as bigint);
    let ret = ioasid_get_if_owned(k, hpasid);
    if (ret) return ret;
    ret = ops.sva_bind_gpasid(domain, dev, data!);
    ioasid_put(k, hpasid);
    return ret;
  });
}

/** The in-kernel unbind: VFIO's detach_group cleanup calls it with a PASID, no user data. */
export function iommu_sva_unbind_gpasid(k: Kernel, domain: IommuDomain, dev: Device, pasid: number): number {
  return k.sim.call(FN.unbind, () => {
    const ops = opsOf(domain);
    if (!ops) return -ENODEV;
    return ops.sva_unbind_gpasid(domain, dev, pasid);
  });
}

export function iommu_uapi_sva_unbind_gpasid(k: Kernel, domain: IommuDomain, dev: Device, udata: UserPtr): number {
  return k.sim.call(FN.unbind_uapi, () => {
    // v5.12 checks ops->sva_bind_gpasid here (sic)
    if (!opsOf(domain)) return -ENODEV;
    const { err, data } = iommu_sva_prepare_bind_data(k, udata);
    if (err) return err;
    const hpasid = Number(data!.hpasid as bigint);
    let ret = ioasid_get_if_owned(k, hpasid);
    if (ret) return ret;
    ret = iommu_sva_unbind_gpasid(k, domain, dev, hpasid);
    ioasid_put(k, hpasid);
    return ret;
  });
}

// ---- cache invalidation ---------------------------------------------------------------------------

function iommu_check_cache_invl_data(k: Kernel, info: UapiObject): number {
  return k.sim.call(FN.check_invl, () => {
    k.sim.recorder.validate('iommu_cache_invalidate_info', 'iommu_check_cache_invl_data');
    if (info.version !== IOMMU_CACHE_INVALIDATE_INFO_VERSION_1) return -EINVAL;
    const cache = info.cache as number;
    const granularity = info.granularity as number;
    if (cache & ~((1 << IOMMU_CACHE_INV_TYPE_NR) - 1)) return -EINVAL;
    if (granularity >= IOMMU_INV_GRANU_NR) return -EINVAL;
    const granu = info.granu as { addr_info: UapiObject; pasid_info: UapiObject };
    switch (granularity) {
      case IOMMU_INV_GRANU_ADDR:
        if (cache & IOMMU_CACHE_INV_TYPE_PASID) return -EINVAL;
        if ((granu.addr_info.flags as number) & ~(IOMMU_INV_ADDR_FLAGS_PASID | IOMMU_INV_ADDR_FLAGS_ARCHID | IOMMU_INV_ADDR_FLAGS_LEAF)) return -EINVAL;
        break;
      case IOMMU_INV_GRANU_PASID:
        if ((granu.pasid_info.flags as number) & ~(IOMMU_INV_PASID_FLAGS_PASID | IOMMU_INV_PASID_FLAGS_ARCHID)) return -EINVAL;
        break;
      case IOMMU_INV_GRANU_DOMAIN:
        if (cache & IOMMU_CACHE_INV_TYPE_DEV_IOTLB) return -EINVAL;
        break;
      default:
        return -EINVAL;
    }
    if ((info.padding as Uint8Array).some((b) => b !== 0)) return -EINVAL;
    return 0;
  });
}

/**
 * iommu_uapi_cache_invalidate: copy minsz (offsetof granu = 16 B); argsz must cover the union
 * member the granularity uses (PASID 32 B, ADDR 56 B); copy the rest up to 56 B; check; call the
 * driver. v8's VFIO ignores what this returns.
 */
export function iommu_uapi_cache_invalidate(k: Kernel, domain: IommuDomain, dev: Device, uinfo: UserPtr): number {
  return k.sim.call(FN.invalidate, () => {
    const ops = opsOf(domain);
    if (!ops) return -ENODEV;
    const size = sizeOf(iommu_cache_invalidate_info);
    const buf = new Uint8Array(size);
    const minsz = offsetOf(iommu_cache_invalidate_info, 'granu');
    if (copy_from_user(k, buf, uinfo, minsz)) return -EFAULT;
    const argsz = getU32(buf, 0);
    const granularity = buf[9]!;
    if (argsz < minsz) return -EINVAL;
    if (granularity === IOMMU_INV_GRANU_PASID && argsz < offsetOfEnd(iommu_cache_invalidate_info, 'granu.pasid_info')) return -EINVAL;
    if (granularity === IOMMU_INV_GRANU_ADDR && argsz < offsetOfEnd(iommu_cache_invalidate_info, 'granu.addr_info')) return -EINVAL;
    if (copy_from_user(k, buf, uptr(uinfo + minsz), Math.min(argsz, size) - minsz, minsz)) return -EFAULT;
    const info = decode(iommu_cache_invalidate_info, buf);
    const ret = iommu_check_cache_invl_data(k, info);
    if (ret) return ret;
    return ops.cache_invalidate(domain, dev, info);
  });
}

// ---- device faults, as v5.12 reported them (consumer: Eric Auger's VFIO fault region) ----------

const FAULT_FN = {
  register: fn('iommu_register_device_fault_handler', 'int iommu_register_device_fault_handler(struct device *dev, iommu_dev_fault_handler_t handler, void *data)', CORE_V512),
  unregister: fn('iommu_unregister_device_fault_handler', 'int iommu_unregister_device_fault_handler(struct device *dev)', CORE_V512),
  report: fn('iommu_report_device_fault', 'int iommu_report_device_fault(struct device *dev, struct iommu_fault_event *evt)', CORE_V512),
  response: fn('iommu_page_response', 'int iommu_page_response(struct device *dev, struct iommu_page_response *msg)', CORE_V512, {
    param: 'msg',
    ctype: 'struct iommu_page_response *',
  }),
};

/** iommu_dev_fault_handler_t: gets the 64-byte struct iommu_fault; 0 when the fault was taken */
export type IommuDevFaultHandler = (fault: Uint8Array, data: unknown) => number;

/** a reported last page request awaiting its response (struct iommu_fault_event on fparam->faults) */
interface PendingEvt {
  readonly grpid: number;
  readonly pasid: number;
  readonly flags: number;
  /** the shared io-pgfault group that carries the response down to the driver */
  readonly group: IopfGroup;
  readonly alloc: KAlloc;
}

/** struct iommu_fault_param (v5.12) */
interface FaultParamV512 {
  readonly handler: IommuDevFaultHandler;
  readonly data: unknown;
  readonly faults: PendingEvt[];
  readonly lock: Mutex;
  readonly iopf: IoPgfault;
  /** the adapter enabled PRI through the shared driver's enable_iopf */
  readonly iopfEnabled: boolean;
  readonly alloc: KAlloc;
}

const faultParams = new WeakMap<Device, FaultParamV512>();

/**
 * iommu_register_device_fault_handler: one handler per device (−EBUSY for a second). Era bridge:
 * v5.12 enabled PRI when it set up the device's context (iommu_enable_dev_iotlb); the shared
 * driver enables it, with the io-pgfault queue, in ops->enable_iopf, called here when the device
 * has PRI (the handler still takes unrecoverable faults without it).
 */
export function iommu_register_device_fault_handler(k: Kernel, core: IommuCore, iopf: IoPgfault, dev: Device, handler: IommuDevFaultHandler, data: unknown): number {
  return k.sim.call(FAULT_FN.register, () => {
    const di = core.dev_iommu(dev);
    if (!di) return -EINVAL;
    if (faultParams.has(dev)) return -EBUSY; // "Only allow one fault handler registered for each device"
    const alloc = kzalloc(k, 'iommu_fault_param');
    if (!alloc) return -ENOMEM;
    const iopfEnabled = !!di.ops.enable_iopf && dev.caps.pri && di.ops.enable_iopf(dev) === 0;
    faultParams.set(dev, { handler, data, faults: [], lock: new Mutex(k, `${dev.name}:fault_param->lock`), iopf, iopfEnabled, alloc });
    return 0;
  });
}

/** −EBUSY while page requests await a response: the handler stays registered (v5.12). */
export function iommu_unregister_device_fault_handler(k: Kernel, core: IommuCore, dev: Device): number {
  return k.sim.call(FAULT_FN.unregister, () => {
    const p = faultParams.get(dev);
    if (!p) return -EINVAL;
    if (p.faults.length) return -EBUSY;
    if (p.iopfEnabled) core.dev_iommu(dev)?.ops.disable_iopf?.(dev);
    faultParams.delete(dev);
    kfree(k, p.alloc);
    return 0;
  });
}

/**
 * iommu_report_device_fault (v5.12): only with a handler registered (−EINVAL otherwise); a last
 * page request is kept pending (kmemdup onto fparam->faults) until iommu_page_response; if the
 * handler refuses it, it is dropped again.
 */
export function iommu_report_device_fault_v512(k: Kernel, dev: Device, fault: Uint8Array, group: IopfGroup | null): number {
  return k.sim.call(FAULT_FN.report, () => {
    const p = faultParams.get(dev);
    if (!p) return -EINVAL;
    const v = new DataView(fault.buffer, fault.byteOffset, fault.byteLength);
    let pending: PendingEvt | null = null;
    if (v.getUint32(0, true) === IOMMU_FAULT_PAGE_REQ && v.getUint32(8, true) & IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE && group) {
      const alloc = kzalloc(k, 'iommu_fault_event(pending)');
      if (!alloc) return -ENOMEM;
      pending = { flags: v.getUint32(8, true), pasid: v.getUint32(12, true), grpid: v.getUint32(16, true), group, alloc };
      mutex_lock(p.lock);
      p.faults.push(pending);
      mutex_unlock(p.lock);
    }
    const ret = p.handler(fault, p.data);
    if (ret && pending) {
      mutex_lock(p.lock);
      p.faults.splice(p.faults.indexOf(pending), 1);
      mutex_unlock(p.lock);
      kfree(k, pending.alloc);
    }
    return ret;
  });
}

/**
 * iommu_page_response (v5.12): matches a pending request by group id, and by PASID when the
 * request needs one; −EINVAL for a bad version/flags or no match (a response with nothing
 * pending is dropped, returning −EINVAL too). The match's io-pgfault group is answered, which
 * sends the driver's page group response.
 */
export function iommu_page_response(k: Kernel, core: IommuCore, dev: Device, msg: UapiObject): number {
  return k.sim.call(FAULT_FN.response, () => {
    if (!core.dev_iommu(dev)?.ops.page_response) return -ENODEV;
    const p = faultParams.get(dev);
    if (!p) return -EINVAL;
    k.sim.recorder.validate('iommu_page_response', 'iommu_page_response');
    const flags = msg.flags as number;
    if (msg.version !== IOMMU_PAGE_RESP_VERSION_1 || flags & ~IOMMU_PAGE_RESP_PASID_VALID) return -EINVAL;
    const hasPasid = (flags & IOMMU_PAGE_RESP_PASID_VALID) !== 0;
    let ret = -EINVAL;
    mutex_lock(p.lock);
    for (const evt of p.faults) {
      if (evt.grpid !== msg.grpid) continue;
      const needsPasid = (evt.flags & IOMMU_FAULT_PAGE_RESPONSE_NEEDS_PASID) !== 0;
      if (needsPasid && (!hasPasid || msg.pasid !== evt.pasid)) continue;
      // domain->ops->page_response(dev, evt, msg), through the shared io-pgfault group
      p.iopf.iopf_group_response(evt.group, msg.code as number);
      p.iopf.iopf_free_group(evt.group);
      p.faults.splice(p.faults.indexOf(evt), 1);
      kfree(k, evt.alloc);
      ret = 0;
      break;
    }
    mutex_unlock(p.lock);
    return ret;
  });
}

/** Page requests reported and not yet answered, for tests. */
export function iommu_pending_faults(dev: Device): number {
  return faultParams.get(dev)?.faults.length ?? 0;
}
