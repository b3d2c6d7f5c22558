import { kfn, type KFn } from '../../sim/index.ts';
import type { Device } from '../kernel/device.ts';
import { EFAULT, EINVAL, ENODEV, EOPNOTSUPP, EPERM, IS_ERR } from '../kernel/errno.ts';
import type { Kernel } from '../kernel/kernel.ts';
import { mutex_lock, mutex_unlock } from '../kernel/locks.ts';
import { uptr, type UserPtr } from '../kernel/mm.ts';
import { copy_from_user, copy_to_user, get_user } from '../kernel/uaccess.ts';
import {
  IOMMU_NESTING_FEAT_BIND_PGTBL,
  IOMMU_NESTING_FEAT_CACHE_INVLD,
  VFIO_IOMMU_NESTING_OP_BIND_PGTBL,
  VFIO_IOMMU_NESTING_OP_CACHE_INVLD,
  VFIO_IOMMU_NESTING_OP_UNBIND_PGTBL,
  VFIO_NESTING_OP_MASK,
  iommu_nesting_info,
  sizeOf,
} from '../kernel/uapi/index.ts';
import { VHOST_VDPA_GET_NESTING_INFO, VHOST_VDPA_NESTING_OP } from '../kernel/uapi/ioctls/vhost.ts';
import type { IommuCore } from '../iommu/iommu.ts';
import { ioasid_get_if_owned, ioasid_put, ioasid_user_for_each_id, ioasid_user_get_from_task, ioasid_user_put } from '../iommu/ioasid.ts';
import {
  DOMAIN_ATTR_NESTING,
  iommu_domain_get_attr,
  iommu_sva_unbind_gpasid,
  iommu_uapi_cache_invalidate,
  iommu_uapi_sva_bind_gpasid,
  iommu_uapi_sva_unbind_gpasid,
} from '../iommu/iommu_uapi.ts';
import type { IommuDomain } from '../iommu/types.ts';
import type { VhostVdpa, VhostVdpaExtension } from './vhost_vdpa.ts';
import { getU32, setU32 } from '../kernel/uapi/le.ts';

/**
 * Design A's vDPA side: a PROJECTION, never posted. In the v7 thread Jean-Philippe Brucker wrote
 * that "vDPA could transport the generic iommu.h structures via its own uAPI, and call the IOMMU
 * API directly" (<20200914133113.GB1375106@myrica>), and Kevin Tian's /dev/sva study (12 Oct 2020,
 * quoted in <a43d47f5-320b-ef60-e2be-a797942ea9f2@redhat.com>) concluded "userspace will use VFIO
 * uAPI for VFIO device and vDPA uAPI for vDPA device ... Replicating them is much easier logic".
 * So vhost-vdpa replicates v8's transport, piece by piece (tunnel-uapi.md §4):
 * - its own nesting-info query (VHOST_VDPA_GET_NESTING_INFO: struct iommu_nesting_info, 64 B,
 *   with the argsz dance of iommu_domain_get_attr);
 * - its own NESTING_OP (VHOST_VDPA_NESTING_OP: VFIO's {argsz, flags, data[]} header, op in the
 *   low 16 bits) forwarding the user pointer to iommu_uapi_* through the same unsigned long →
 *   void * → void __user * chain, with v8's "always successful" unbind/invalidate;
 * - its own PASID-ownership glue with /dev/ioasid (the v7 vfio_mm was VFIO-private), used at
 *   release to unbind every owned PASID keyed on current->mm, as v8's detach_group does;
 * - the domain: a PASID bound here nests on the device's stage 2, which must be a nest parent.
 *   vhost-vdpa's open allocates a plain paging domain and the extension point has no open hook,
 *   so the projection declines the platform domain at open and allocates a NEST_PARENT paging
 *   domain on first need (the first IOTLB update for ASID 0, the nesting-info query or a bind),
 *   attaching it to the DMA device as vhost_vdpa_alloc_domain would. ASID 0's IOTLB messages map
 *   into it (stage 2); vhost-vdpa's release detaches and frees it.
 * The fault/response ring a vDPA port would also need is not projected.
 */
const PROJ: KFn['prov'] = {
  kind: 'projection',
  source: 'vhost-vdpa port of v8 proposed in the v7 thread: J-P Brucker <20200914133113.GB1375106@myrica>, Kevin Tian 12 Oct 2020 (in <a43d47f5-320b-ef60-e2be-a797942ea9f2@redhat.com>)',
};
const ARG = { param: 'arg', ctype: 'unsigned long' } as const;
const fn = (name: string, sig: string, extra: Partial<KFn> = {}): KFn => kfn({ name, layer: 'vhost-vdpa', sig, prov: PROJ, ...extra });
const FN = {
  alloc_domain: fn('vhost_vdpa_alloc_nesting_domain', 'static int vhost_vdpa_alloc_nesting_domain(struct vhost_vdpa *v)'),
  nesting_info: fn('vhost_vdpa_get_nesting_info', 'static long vhost_vdpa_get_nesting_info(struct vhost_vdpa *v, unsigned long arg)', { uapi: ARG, handler: true, op: 'hw-info' }),
  nesting_op: fn('vhost_vdpa_nesting_op', 'static long vhost_vdpa_nesting_op(struct vhost_vdpa *v, unsigned long arg)', { uapi: ARG, handler: true }),
  pgtbl_op: fn('vhost_vdpa_handle_pgtbl_op', 'static long vhost_vdpa_handle_pgtbl_op(struct vhost_vdpa *v, bool is_bind, unsigned long arg)', { uapi: ARG }),
  invalidate: fn('vhost_vdpa_invalidate_cache', 'static long vhost_vdpa_invalidate_cache(struct vhost_vdpa *v, unsigned long arg)', { uapi: ARG }),
  bind_fn: fn('vhost_vdpa_bind_gpasid_fn', 'static int vhost_vdpa_bind_gpasid_fn(struct device *dev, void *data)', { uapi: { param: 'data', ctype: 'void *' } }),
  unbind_fn: fn('vhost_vdpa_unbind_gpasid_fn', 'static int vhost_vdpa_unbind_gpasid_fn(struct device *dev, void *data)', { uapi: { param: 'data', ctype: 'void *' } }),
  cache_inv_fn: fn('vhost_vdpa_cache_inv_fn', 'static int vhost_vdpa_cache_inv_fn(struct device *dev, void *data)', { uapi: { param: 'data', ctype: 'void *' } }),
  owned: fn('vhost_vdpa_for_each_owned_pasid', 'static void vhost_vdpa_for_each_owned_pasid(struct vhost_vdpa *v, void (*fn)(ioasid_t pasid, void *data), void *data)'),
  release: fn('vhost_vdpa_release_nesting', 'static void vhost_vdpa_release_nesting(struct vhost_vdpa *v)'),
};

/** the shared driver's flag for domain_alloc_paging_flags (IOMMU_HWPT_ALLOC_NEST_PARENT) */
const NEST_PARENT = 1 << 0;
const OP_TAGS = ['bind', 'unbind', 'invalidate'];

export const VHOST_VDPA_TUNNEL_NAMES: ReadonlyMap<number, string> = new Map([
  [VHOST_VDPA_GET_NESTING_INFO, 'VHOST_VDPA_GET_NESTING_INFO'],
  [VHOST_VDPA_NESTING_OP, 'VHOST_VDPA_NESTING_OP'],
]);

/** the capsule: `data` carries &arg, an unsigned long user address */
interface VdpaCapsule {
  readonly domain: IommuDomain;
  readonly data: { arg: number };
}

const capsuleArg = (dc: VdpaCapsule): UserPtr => uptr(dc.data.arg);

function vhost_vdpa_alloc_nesting_domain(v: VhostVdpa): IommuDomain | number {
  if (v.domain) return v.domain;
  return v.k.sim.call(FN.alloc_domain, () => {
    const dev = v.vdpa.dma_dev;
    const ops = v.core.dev_iommu(dev)?.ops;
    if (!ops) return -ENODEV;
    const dom = ops.domain_alloc_paging_flags(dev, NEST_PARENT, null);
    if (IS_ERR(dom)) return dom.err;
    const ret = v.core.iommu_attach_device(dom, dev);
    if (ret) {
      v.core.iommu_domain_free(dom);
      return ret;
    }
    v.domain = dom;
    return dom;
  });
}

/** 64-byte iommu_nesting_info through iommu_domain_get_attr: argsz below 64 comes back raised. */
function vhost_vdpa_get_nesting_info(v: VhostVdpa, arg: number): number {
  const k = v.k;
  return k.sim.call(FN.nesting_info, () => {
    const { err, val: argsz } = get_user(k, uptr(arg), 4);
    if (err) return -EFAULT;
    const dom = vhost_vdpa_alloc_nesting_domain(v);
    if (typeof dom === 'number') return dom;
    const size = sizeOf(iommu_nesting_info);
    const info = new Uint8Array(size);
    setU32(info, 0, Math.min(argsz, size));
    const ret = iommu_domain_get_attr(k, dom, DOMAIN_ATTR_NESTING, info);
    if (ret) return ret;
    const n = argsz < size ? 4 : size;
    return copy_to_user(k, uptr(arg), info, n) ? -EFAULT : 0;
  });
}

function features(v: VhostVdpa, dom: IommuDomain): number {
  const info = new Uint8Array(sizeOf(iommu_nesting_info));
  setU32(info, 0, info.length);
  return iommu_domain_get_attr(v.k, dom, DOMAIN_ATTR_NESTING, info) ? 0 : getU32(info, 12);
}

function vhost_vdpa_bind_gpasid_fn(v: VhostVdpa, dev: Device, dc: VdpaCapsule): number {
  return v.k.sim.call(FN.bind_fn, () => iommu_uapi_sva_bind_gpasid(v.k, dc.domain, dev, capsuleArg(dc)));
}

/** always 0, like v8's vfio_dev_unbind_gpasid_fn */
function vhost_vdpa_unbind_gpasid_fn(v: VhostVdpa, dev: Device, dc: VdpaCapsule): number {
  return v.k.sim.call(FN.unbind_fn, () => {
    iommu_uapi_sva_unbind_gpasid(v.k, dc.domain, dev, capsuleArg(dc));
    return 0;
  });
}

function vhost_vdpa_handle_pgtbl_op(v: VhostVdpa, is_bind: boolean, arg: number): number {
  const k = v.k;
  return k.sim.call(FN.pgtbl_op, () => {
    mutex_lock(v.mutex);
    let ret = 0;
    const dom = vhost_vdpa_alloc_nesting_domain(v);
    if (typeof dom === 'number') ret = dom;
    else if (!(features(v, dom) & IOMMU_NESTING_FEAT_BIND_PGTBL)) ret = -EOPNOTSUPP;
    else {
      // one DMA device per vDPA device: no group walk, and no rollback to do
      const dc: VdpaCapsule = { domain: dom, data: { arg } };
      if (is_bind) ret = vhost_vdpa_bind_gpasid_fn(v, v.vdpa.dma_dev, dc);
      else vhost_vdpa_unbind_gpasid_fn(v, v.vdpa.dma_dev, dc);
    }
    mutex_unlock(v.mutex);
    return ret;
  });
}

function vhost_vdpa_invalidate_cache(v: VhostVdpa, arg: number): number {
  const k = v.k;
  return k.sim.call(FN.invalidate, () => {
    mutex_lock(v.mutex);
    let ret = 0;
    const dom = vhost_vdpa_alloc_nesting_domain(v);
    if (typeof dom === 'number') ret = dom;
    else if (!(features(v, dom) & IOMMU_NESTING_FEAT_CACHE_INVLD)) ret = -EOPNOTSUPP;
    else {
      const dc: VdpaCapsule = { domain: dom, data: { arg } };
      k.sim.call(FN.cache_inv_fn, () => {
        iommu_uapi_cache_invalidate(k, dc.domain, v.vdpa.dma_dev, capsuleArg(dc));
        return 0;
      });
    }
    mutex_unlock(v.mutex);
    return ret;
  });
}

function vhost_vdpa_nesting_op(v: VhostVdpa, arg: number): number {
  const k = v.k;
  const peek = new Uint8Array(8);
  k.cur().mm.access(arg, peek, 0, 8, false);
  const op = OP_TAGS[getU32(peek, 4) & VFIO_NESTING_OP_MASK];
  return k.sim.call(
    FN.nesting_op,
    () => {
      // vhost_dev_check_owner
      if (v.owner !== k.cur().mm) return -EPERM;
      const hdr = new Uint8Array(8);
      if (copy_from_user(k, hdr, uptr(arg), 8)) return -EFAULT;
      const argsz = getU32(hdr, 0);
      const flags = getU32(hdr, 4);
      k.sim.recorder.validate('vhost_vdpa_nesting_op', 'vhost_vdpa_nesting_op');
      if (argsz < 8 || flags & ~VFIO_NESTING_OP_MASK) return -EINVAL;
      switch (flags & VFIO_NESTING_OP_MASK) {
        case VFIO_IOMMU_NESTING_OP_BIND_PGTBL:
          return vhost_vdpa_handle_pgtbl_op(v, true, arg + 8);
        case VFIO_IOMMU_NESTING_OP_UNBIND_PGTBL:
          return vhost_vdpa_handle_pgtbl_op(v, false, arg + 8);
        case VFIO_IOMMU_NESTING_OP_CACHE_INVLD:
          return vhost_vdpa_invalidate_cache(v, arg + 8);
        default:
          return -EINVAL;
      }
    },
    op,
  );
}

/**
 * The ownership glue: every PASID of current's /dev/ioasid user that ioasid_get_if_owned accepts.
 * Keyed on current->mm, so a release from another process finds nothing (v8's behaviour, again).
 */
function vhost_vdpa_for_each_owned_pasid(v: VhostVdpa, f: (pasid: number) => void): void {
  const k = v.k;
  k.sim.call(FN.owned, () => {
    const task = k.current;
    const iuser = task ? ioasid_user_get_from_task(k, task) : null;
    if (!iuser) return;
    ioasid_user_for_each_id(k, iuser, (id) => {
      if (ioasid_get_if_owned(k, id)) return;
      f(id);
      ioasid_put(k, id);
    });
    ioasid_user_put(k, iuser);
  });
}

/** Release-time unbind (before vhost-vdpa unmaps the IOTLB and frees the nest parent). */
function vhost_vdpa_release_nesting(v: VhostVdpa): void {
  v.k.sim.call(FN.release, () => {
    const dom = v.domain;
    if (!dom) return;
    vhost_vdpa_for_each_owned_pasid(v, (pasid) => iommu_sva_unbind_gpasid(v.k, dom, v.vdpa.dma_dev, pasid));
  });
}

/** The extension design A's boot passes to vhost_vdpa_probe. */
export function vhost_vdpa_tunnel(_k: Kernel, _core: IommuCore): VhostVdpaExtension {
  return {
    platformDomainAtOpen: false,
    ioctl(v, cmd, arg) {
      switch (cmd >>> 0) {
        case VHOST_VDPA_GET_NESTING_INFO:
          return vhost_vdpa_get_nesting_info(v, arg);
        case VHOST_VDPA_NESTING_OP:
          return vhost_vdpa_nesting_op(v, arg);
        default:
          return null;
      }
    },
    ioctlName: (cmd) => VHOST_VDPA_TUNNEL_NAMES.get(cmd >>> 0),
    domainForAsid(v, asid) {
      if (asid !== 0) return null;
      const dom = vhost_vdpa_alloc_nesting_domain(v);
      return typeof dom === 'number' ? null : dom;
    },
    release: vhost_vdpa_release_nesting,
  };
}

