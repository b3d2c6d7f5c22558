import { kfn, type KFn } from '../../sim/index.ts';
import { EBADFD, EFAULT, EINVAL, ENOBUFS, IS_ERR, PTR_ERR } from '../kernel/errno.ts';
import type { Kernel } from '../kernel/kernel.ts';
import { mutex_lock, mutex_unlock } from '../kernel/locks.ts';
import { uptr, type UserPtr } from '../kernel/mm.ts';
import { copy_from_user, copy_to_user } from '../kernel/uaccess.ts';
import {
  decode,
  offsetOfEnd,
  sizeOf,
  vdpa_device_attach_iommufd_as,
  vdpa_device_detach_iommufd_as,
  vhost_vdpa_set_iommufd,
} from '../kernel/uapi/index.ts';
import { VDPA_DEVICE_ATTACH_IOMMUFD_AS, VDPA_DEVICE_DETACH_IOMMUFD_AS, VHOST_VDPA_SET_IOMMU_FD } from '../kernel/uapi/ioctls/vhost.ts';
import type { IommuCore } from '../iommu/iommu.ts';
import { IOMMU_NO_PASID } from '../iommu/types.ts';
import {
  iommufd_device_attach,
  iommufd_device_bind,
  iommufd_device_detach,
  iommufd_device_replace,
  iommufd_device_unbind,
  type IommufdDevice,
} from '../iommufd/device.ts';
import type { IommufdCtx } from '../iommufd/iommufd_private.ts';
import { iommufd_ctx_from_fd, iommufd_ctx_put } from '../iommufd/main.ts';
import type { VdpaDevice } from './vdpa.ts';
import { vhost_vdpa_probe, type VhostVdpa, type VhostVdpaExtension } from './vhost_vdpa.ts';
import { setU32 } from '../kernel/uapi/le.ts';

/**
 * Design B's vhost-vdpa (a projection after Cindy Lu's RFC, Sep/Nov 2023, never merged): the vDPA
 * device registers with the one iommufd, exactly as a VFIO device does, through the iommufd kernel
 * API. VHOST_VDPA_SET_IOMMU_FD {iommufd, group_id, ioas_id} binds the device's DMA function
 * (iommufd_device_bind) on the first group and attaches that virtqueue group's address space to
 * `ioas_id` (an IOAS or any HWPT id); VDPA_DEVICE_ATTACH/DETACH_IOMMUFD_AS move ASID 0.
 *
 * What the RFC only sketched and this model fills in: a group's ASID names where it attaches.
 * ASID 0 is the RID (IOMMU_NO_PASID); ASID n > 0 is PASID n, so each virtqueue group given its own
 * ASID (VHOST_VDPA_SET_GROUP_ASID) gets its own PASID, and a nested HWPT on it gives that group
 * vSVA. Groups on one ASID share the attachment. RFC quirks kept: group_id is checked against the
 * number of virtqueues (ENOBUFS), and a file that is not an iommufd is EINVAL.
 */
const RFC = '[RFC 3/7] vhost: Add 3 new uapi to support iommufd <20230923170540.1447301-4-lulu@redhat.com>';
const fn = (name: string, sig: string, extra: Partial<KFn> = {}): KFn =>
  kfn({ name, layer: 'vhost-vdpa', sig, prov: { kind: 'projection', source: RFC }, ...extra });
const FN = {
  set_iommufd: fn('vhost_vdpa_tmp_set_iommufd', 'static long vhost_vdpa_tmp_set_iommufd(struct vhost_vdpa *v, void __user *argp)', {
    uapi: { param: 'argp', ctype: 'struct vhost_vdpa_set_iommufd __user *' },
    handler: true,
    op: 'bind-device',
  }),
  attach: fn('vdpa_ioctl_device_attach', 'int vdpa_ioctl_device_attach(struct vhost_vdpa *v, void __user *arg)', {
    uapi: { param: 'arg', ctype: 'struct vdpa_device_attach_iommufd_as __user *' },
    handler: true,
    op: 'attach',
  }),
  detach: fn('vdpa_ioctl_device_detach', 'int vdpa_ioctl_device_detach(struct vhost_vdpa *v, void __user *arg)', {
    uapi: { param: 'arg', ctype: 'struct vdpa_device_detach_iommufd_as __user *' },
    handler: true,
    op: 'detach',
  }),
  bind: fn('vdpa_iommufd_bind', 'int vdpa_iommufd_bind(struct vdpa_device *vdpa, struct iommufd_ctx *ictx, u32 *ioas_id, u32 *device_id)'),
  unbind: fn('vdpa_iommufd_unbind', 'void vdpa_iommufd_unbind(struct vdpa_device *vdpa)'),
  group_attach: fn('vdpa_iommufd_group_attach', 'static int vdpa_iommufd_group_attach(struct vdpa_device *vdpa, u32 group, u32 *pt_id)'),
  release: fn('vdpa_iommufd_release', 'static void vdpa_iommufd_release(struct vhost_vdpa *v)'),
};

const NAMES = new Map<number, string>([
  [VHOST_VDPA_SET_IOMMU_FD, 'VHOST_VDPA_SET_IOMMU_FD'],
  [VDPA_DEVICE_ATTACH_IOMMUFD_AS, 'VDPA_DEVICE_ATTACH_IOMMUFD_AS'],
  [VDPA_DEVICE_DETACH_IOMMUFD_AS, 'VDPA_DEVICE_DETACH_IOMMUFD_AS'],
]);

/** vdpa->iommufd_ictx, iommufd_device and the attachments, per vhost-vdpa device */
export interface VdpaIommufd {
  ictx: IommufdCtx;
  idev: IommufdDevice;
  dev_id: number;
  /** pasid (ASID) → the pt id attached and the groups using it */
  readonly attached: Map<number, { pt_id: number; groups: Set<number> }>;
}

const state = new WeakMap<VhostVdpa, VdpaIommufd>();

/** The iommufd binding of a vhost-vdpa device, for tests. */
export function vdpa_iommufd_of(v: VhostVdpa): VdpaIommufd | undefined {
  return state.get(v);
}

/** The PASID a group's address space lives at: ASID 0 is the RID. */
export function vdpa_group_pasid(vdpa: VdpaDevice, group: number): number {
  const asid = vdpa.groupAsid[group] ?? 0;
  return asid === 0 ? IOMMU_NO_PASID : asid;
}

/**
 * Attach (or move) one group's address space to pt_id; groups sharing an ASID share the
 * attachment. A group that moved to another ASID leaves its old one, which is detached once empty.
 */
function vdpa_iommufd_group_attach(k: Kernel, v: VhostVdpa, s: VdpaIommufd, group: number, pt: { id: number }): number {
  return k.sim.call(FN.group_attach, () => {
    const pasid = vdpa_group_pasid(v.vdpa, group);
    const cur = s.attached.get(pasid);
    if (!cur || cur.pt_id !== pt.id) {
      const rc = cur ? iommufd_device_replace(s.idev, pasid, pt) : iommufd_device_attach(s.idev, pasid, pt);
      if (rc) return rc;
    }
    const groups = cur?.groups ?? new Set<number>();
    groups.add(group);
    s.attached.set(pasid, { pt_id: pt.id, groups });
    for (const [p, a] of [...s.attached]) {
      if (p === pasid || !a.groups.delete(group) || a.groups.size) continue;
      iommufd_device_detach(s.idev, p);
      s.attached.delete(p);
    }
    return 0;
  });
}

function vdpa_group_detach(s: VdpaIommufd, group: number): void {
  for (const [pasid, a] of s.attached) {
    if (!a.groups.delete(group) || a.groups.size) continue;
    iommufd_device_detach(s.idev, pasid);
    s.attached.delete(pasid);
  }
}

/** vdpa_iommufd_unbind: detach every address space, unbind, drop the ictx. */
function vdpa_iommufd_unbind(k: Kernel, v: VhostVdpa): void {
  k.sim.call(FN.unbind, () => {
    const s = state.get(v);
    if (!s) return;
    for (const pasid of [...s.attached.keys()].sort((a, b) => b - a)) iommufd_device_detach(s.idev, pasid);
    s.attached.clear();
    iommufd_device_unbind(s.idev);
    iommufd_ctx_put(s.ictx);
    state.delete(v);
  });
}

/**
 * VHOST_VDPA_SET_IOMMU_FD: 12 bytes in; a negative fd unsets the group (the last group unbinds);
 * the first group binds the DMA function to the iommufd; the group's address space is attached to
 * ioas_id; out_dev_id and out_hwpt_id (8 B) go back.
 */
function vhost_vdpa_set_iommufd_ioctl(k: Kernel, v: VhostVdpa, argp: UserPtr): number {
  return k.sim.call(FN.set_iommufd, () => {
    const minsz = offsetOfEnd(vhost_vdpa_set_iommufd, 'ioas_id');
    const raw = new Uint8Array(sizeOf(vhost_vdpa_set_iommufd));
    if (copy_from_user(k, raw, argp, minsz)) return -EFAULT;
    const set = decode(vhost_vdpa_set_iommufd, raw);
    k.sim.recorder.validate('vhost_vdpa_set_iommufd', 'vhost_vdpa_tmp_set_iommufd');
    const group = set.group_id as number;
    if (group >= v.vdpa.nvqs || group >= v.vdpa.ngroups) return -ENOBUFS;
    mutex_lock(v.mutex);
    const out = (r: number): number => {
      mutex_unlock(v.mutex);
      return r;
    };
    let s = state.get(v);
    if ((set.iommufd as number) < 0) {
      if (!s || ![...s.attached.values()].some((a) => a.groups.has(group))) return out(-EINVAL);
      vdpa_group_detach(s, group);
      if (!s.attached.size) vdpa_iommufd_unbind(k, v);
      return out(0);
    }
    let bound_now = false;
    if (!s) {
      const ictx = iommufd_ctx_from_fd(k, set.iommufd as number);
      if (IS_ERR(ictx)) return out(PTR_ERR(ictx) === -EBADFD ? -EINVAL : PTR_ERR(ictx));
      const id = { id: 0 };
      const idev = k.sim.call(FN.bind, () => iommufd_device_bind(ictx, v.vdpa.dma_dev, id));
      if (IS_ERR(idev)) {
        iommufd_ctx_put(ictx);
        return out(PTR_ERR(idev));
      }
      s = { ictx, idev, dev_id: id.id, attached: new Map() };
      state.set(v, s);
      bound_now = true;
    }
    const pt = { id: set.ioas_id as number };
    let rc = vdpa_iommufd_group_attach(k, v, s, group, pt);
    if (!rc) {
      const b = new Uint8Array(8);
      const dv = new DataView(b.buffer);
      dv.setUint32(0, s.dev_id, true);
      dv.setUint32(4, pt.id, true);
      if (copy_to_user(k, uptr(argp + minsz), b, 8)) {
        rc = -EFAULT;
        vdpa_group_detach(s, group);
      }
    }
    if (rc && bound_now) vdpa_iommufd_unbind(k, v);
    return out(rc);
  });
}

/** VDPA_DEVICE_ATTACH_IOMMUFD_AS: ASID 0 (every group on it) to ioas_id; the id goes back. */
function vdpa_ioctl_device_attach(k: Kernel, v: VhostVdpa, argp: UserPtr): number {
  return k.sim.call(FN.attach, () => {
    const minsz = offsetOfEnd(vdpa_device_attach_iommufd_as, 'ioas_id');
    const raw = new Uint8Array(minsz);
    if (copy_from_user(k, raw, argp, minsz)) return -EFAULT;
    const a = decode(vdpa_device_attach_iommufd_as, raw);
    k.sim.recorder.validate('vdpa_device_attach_iommufd_as', 'vdpa_ioctl_device_attach');
    // IOMMUFD_INVALID_ID is 0
    if ((a.argsz as number) < minsz || (a.flags as number) || (a.ioas_id as number) === 0) return -EINVAL;
    const s = state.get(v);
    if (!s) return -EINVAL;
    mutex_lock(v.mutex);
    const pt = { id: a.ioas_id as number };
    let rc = 0;
    for (let g = 0; !rc && g < v.vdpa.ngroups; g++) if (vdpa_group_pasid(v.vdpa, g) === IOMMU_NO_PASID) rc = vdpa_iommufd_group_attach(k, v, s, g, pt);
    mutex_unlock(v.mutex);
    if (rc) return rc;
    const b = new Uint8Array(4);
    setU32(b, 0, pt.id);
    return copy_to_user(k, uptr(argp + offsetOfEnd(vdpa_device_attach_iommufd_as, 'flags')), b, 4) ? -EFAULT : 0;
  });
}

/**
 * VDPA_DEVICE_DETACH_IOMMUFD_AS: ASID 0 back to blocked DMA. (The RFC's check is inverted: it
 * refuses a bound device; the model refuses an unbound one, as its comment says.)
 */
function vdpa_ioctl_device_detach(k: Kernel, v: VhostVdpa, argp: UserPtr): number {
  return k.sim.call(FN.detach, () => {
    const minsz = offsetOfEnd(vdpa_device_detach_iommufd_as, 'flags');
    const raw = new Uint8Array(minsz);
    if (copy_from_user(k, raw, argp, minsz)) return -EFAULT;
    const d = decode(vdpa_device_detach_iommufd_as, raw);
    if ((d.argsz as number) < minsz || (d.flags as number)) return -EINVAL;
    const s = state.get(v);
    if (!s) return -EINVAL;
    mutex_lock(v.mutex);
    const rid = s.attached.get(IOMMU_NO_PASID);
    if (rid) {
      iommufd_device_detach(s.idev, IOMMU_NO_PASID);
      s.attached.delete(IOMMU_NO_PASID);
    }
    mutex_unlock(v.mutex);
    return 0;
  });
}

/** The extension design B registers vhost-vdpa devices with. */
export const vhost_vdpa_iommufd_ext: VhostVdpaExtension = {
  ioctl(v, cmd, arg) {
    const k = v.k;
    switch (cmd >>> 0) {
      case VHOST_VDPA_SET_IOMMU_FD:
        return vhost_vdpa_set_iommufd_ioctl(k, v, uptr(arg));
      case VDPA_DEVICE_ATTACH_IOMMUFD_AS:
        return vdpa_ioctl_device_attach(k, v, uptr(arg));
      case VDPA_DEVICE_DETACH_IOMMUFD_AS:
        return vdpa_ioctl_device_detach(k, v, uptr(arg));
      default:
        return null;
    }
  },
  ioctlName: (cmd) => NAMES.get(cmd >>> 0),
  // the device's DMA goes through the iommufd attachments, never through vhost's own IOTLB
  domainForAsid: () => null,
  platformDomainAtOpen: false,
  release(v) {
    v.k.sim.call(FN.release, () => vdpa_iommufd_unbind(v.k, v));
  },
};

/** vhost_vdpa_probe with design B's extension; several groups/ASIDs are allowed (projection). */
export function vhost_vdpa_iommufd_probe(k: Kernel, core: IommuCore, vdpa: VdpaDevice): VhostVdpa {
  return vhost_vdpa_probe(k, core, vdpa, vhost_vdpa_iommufd_ext, true);
}
