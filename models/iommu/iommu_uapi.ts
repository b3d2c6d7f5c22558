import { kfn, type KFn } from '../../sim/index.ts';
import type { Device } from '../kernel/device.ts';
import { EFAULT, EINVAL, ENODEV } from '../kernel/errno.ts';
import type { Kernel } from '../kernel/kernel.ts';
import { uptr, type UserPtr } from '../kernel/mm.ts';
import { copy_from_user } from '../kernel/uaccess.ts';
import {
  IOMMU_CACHE_INVALIDATE_INFO_VERSION_1,
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
import type { IommuDomain, IommuOps } from './types.ts';
import { ioasid_get_if_owned, ioasid_put } from './ioasid.ts';

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
    const argsz = new DataView(buf.buffer).getUint32(0, true);
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
    const argsz = new DataView(buf.buffer).getUint32(0, true);
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
