import { kfn, type KFn } from '../../sim/index.ts';
import { EBUSY, EEXIST, EFAULT, EINVAL, ENOMEM, ENOTTY, EOPNOTSUPP, EPERM, IS_ERR } from '../kernel/errno.ts';
import type { File, FileOperations } from '../kernel/files.ts';
import { PinnedPages, pin_user_pages, unpin_user_pages } from '../kernel/gup.ts';
import { _IO, _IOR, _IOW, _IOWR, hexCmd } from '../kernel/ioctl.ts';
import type { Kernel } from '../kernel/kernel.ts';
import { Mutex, mutex_lock, mutex_unlock } from '../kernel/locks.ts';
import { uptr, type Mm, type UserPtr } from '../kernel/mm.ts';
import { kfree, kzalloc, type KAlloc } from '../kernel/slab.ts';
import { copy_from_user, copy_to_user, get_user, put_user } from '../kernel/uaccess.ts';
import {
  VHOST_ACCESS_RO,
  VHOST_ACCESS_WO,
  VHOST_IOTLB_BATCH_BEGIN,
  VHOST_IOTLB_BATCH_END,
  VHOST_IOTLB_INVALIDATE,
  VHOST_IOTLB_MSG_V2,
  VHOST_IOTLB_UPDATE,
  decode,
  encode,
  sizeOf,
  vhost_iotlb_msg,
  vhost_vdpa_iova_range,
  vhost_vring_state,
} from '../kernel/uapi/index.ts';
import type { IommuCore } from '../iommu/iommu.ts';
import { IOMMU_READ, IOMMU_WRITE, type IommuDomain } from '../iommu/types.ts';
import type { VdpaDevice } from './vdpa.ts';

/**
 * vhost-vdpa's char device (drivers/vhost/vdpa.c and the IOTLB message path of vhost.c), the part
 * both designs share: open attaches a platform-IOMMU domain to the vDPA device's DMA function,
 * IOTLB messages written to the fd pin and map guest memory into it, the vring-group and ASID
 * ioctls, release. Each design adds its own ioctls through an extension (tunnel: the duplicated
 * nesting transport; iommufd: the 2023 RFC's attach), which is where the designs differ.
 */
const SRC = 'drivers/vhost/vdpa.c @ v6.15';
const fn = (name: string, sig: string, extra: Partial<KFn> = {}): KFn =>
  kfn({ name, layer: 'vhost-vdpa', sig, prov: { kind: 'merged', source: SRC }, ...extra });
const FN = {
  open: fn('vhost_vdpa_open', 'static int vhost_vdpa_open(struct inode *inode, struct file *filep)'),
  alloc_domain: fn('vhost_vdpa_alloc_domain', 'static int vhost_vdpa_alloc_domain(struct vhost_vdpa *v)'),
  ioctl: fn('vhost_vdpa_unlocked_ioctl', 'static long vhost_vdpa_unlocked_ioctl(struct file *filep, unsigned int cmd, unsigned long arg)', {
    entry: 'ioctl',
    uapi: { param: 'arg', ctype: 'unsigned long' },
  }),
  write: fn('vhost_chr_write_iter', 'ssize_t vhost_chr_write_iter(struct vhost_dev *dev, struct iov_iter *from)', { prov: { kind: 'merged', source: 'drivers/vhost/vhost.c @ v6.15' } }),
  msg: fn('vhost_vdpa_process_iotlb_msg', 'static int vhost_vdpa_process_iotlb_msg(struct vhost_dev *dev, u32 asid, struct vhost_iotlb_msg *msg)', { handler: true, op: 'map' }),
  update: fn('vhost_vdpa_process_iotlb_update', 'static int vhost_vdpa_process_iotlb_update(struct vhost_vdpa *v, struct vhost_iotlb *iotlb, struct vhost_iotlb_msg *msg)'),
  pa_map: fn('vhost_vdpa_pa_map', 'static int vhost_vdpa_pa_map(struct vhost_vdpa *v, struct vhost_iotlb *iotlb, u64 iova, u64 size, u64 uaddr, u32 perm)'),
  unmap: fn('vhost_vdpa_unmap', 'static void vhost_vdpa_unmap(struct vhost_vdpa *v, struct vhost_iotlb *iotlb, u64 start, u64 size)'),
  release: fn('vhost_vdpa_release', 'static int vhost_vdpa_release(struct inode *inode, struct file *filep)'),
};

import {
  VHOST_GET_BACKEND_FEATURES,
  VHOST_SET_BACKEND_FEATURES,
  VHOST_SET_OWNER,
  VHOST_VDPA_GET_AS_NUM,
  VHOST_VDPA_GET_DEVICE_ID,
  VHOST_VDPA_GET_GROUP_NUM,
  VHOST_VDPA_GET_IOVA_RANGE,
  VHOST_VDPA_GET_VQS_COUNT,
  VHOST_VDPA_GET_VRING_GROUP,
  VHOST_VDPA_SET_GROUP_ASID,
} from '../kernel/uapi/ioctls/vhost.ts';
export {
  VHOST_GET_BACKEND_FEATURES,
  VHOST_SET_BACKEND_FEATURES,
  VHOST_SET_OWNER,
  VHOST_VDPA_GET_AS_NUM,
  VHOST_VDPA_GET_DEVICE_ID,
  VHOST_VDPA_GET_GROUP_NUM,
  VHOST_VDPA_GET_IOVA_RANGE,
  VHOST_VDPA_GET_VQS_COUNT,
  VHOST_VDPA_GET_VRING_GROUP,
  VHOST_VDPA_SET_GROUP_ASID,
};

const NAMES = new Map<number, string>([
  [VHOST_SET_OWNER, 'VHOST_SET_OWNER'],
  [VHOST_SET_BACKEND_FEATURES, 'VHOST_SET_BACKEND_FEATURES'],
  [VHOST_GET_BACKEND_FEATURES, 'VHOST_GET_BACKEND_FEATURES'],
  [VHOST_VDPA_GET_DEVICE_ID, 'VHOST_VDPA_GET_DEVICE_ID'],
  [VHOST_VDPA_GET_IOVA_RANGE, 'VHOST_VDPA_GET_IOVA_RANGE'],
  [VHOST_VDPA_GET_AS_NUM, 'VHOST_VDPA_GET_AS_NUM'],
  [VHOST_VDPA_GET_VRING_GROUP, 'VHOST_VDPA_GET_VRING_GROUP'],
  [VHOST_VDPA_SET_GROUP_ASID, 'VHOST_VDPA_SET_GROUP_ASID'],
  [VHOST_VDPA_GET_VQS_COUNT, 'VHOST_VDPA_GET_VQS_COUNT'],
  [VHOST_VDPA_GET_GROUP_NUM, 'VHOST_VDPA_GET_GROUP_NUM'],
]);

/** The backend features vhost-vdpa offers: IOTLB_MSG_V2, IOTLB_BATCH, IOTLB_ASID (bits 1–3). */
const VHOST_VDPA_BACKEND_FEATURES = (1n << 1n) | (1n << 2n) | (1n << 3n);

/** One mapping of an address space's IOTLB: what it pinned and where it put it. */
interface IotlbMap {
  readonly iova: number;
  readonly size: number;
  readonly pins: PinnedPages;
  readonly alloc: KAlloc;
}

/** A design's additions to the vhost-vdpa fd. */
export interface VhostVdpaExtension {
  /** handles a design's own ioctl; null when the number is not one of its own */
  ioctl?(v: VhostVdpa, cmd: number, arg: number): number | null;
  ioctlName?(cmd: number): string | undefined;
  /** the domain an ASID's IOTLB maps into when it is not the device's RID domain (projections) */
  domainForAsid?(v: VhostVdpa, asid: number): IommuDomain | null;
  /** false when the design attaches the device itself (the iommufd RFC): no platform domain at open */
  platformDomainAtOpen?: boolean;
  release?(v: VhostVdpa): void;
}

/** struct vhost_vdpa: one per vDPA device; one opener at a time. */
export class VhostVdpa {
  opened = false;
  owner: Mm | null = null;
  backend_features = 0n;
  domain: IommuDomain | null = null;
  in_batch = false;
  readonly mutex: Mutex;
  /** per ASID, the IOTLB's mappings */
  readonly iotlb = new Map<number, IotlbMap[]>();

  constructor(
    readonly k: Kernel,
    readonly core: IommuCore,
    readonly vdpa: VdpaDevice,
    readonly ext: VhostVdpaExtension,
  ) {
    this.mutex = new Mutex(k, `${vdpa.name}:vhost_dev->mutex`);
  }

  get path(): string {
    return `/dev/vhost-vdpa-${this.vdpa.minor}`;
  }
}

/**
 * vhost_vdpa_probe: registers /dev/vhost-vdpa-N for the device. Upstream refuses a platform-IOMMU
 * device with more than one group or address space; `projection` lifts that for the designs that
 * give each group a PASID, which nobody merged.
 */
export function vhost_vdpa_probe(k: Kernel, core: IommuCore, vdpa: VdpaDevice, ext: VhostVdpaExtension = {}, projection = false): VhostVdpa {
  if (!projection && (vdpa.ngroups > 1 || vdpa.nas > 1)) {
    throw new Error(`vhost_vdpa_probe: ${vdpa.name} has ${vdpa.ngroups} groups / ${vdpa.nas} address spaces: upstream takes 1 and 1 (EOPNOTSUPP)`);
  }
  vdpa.minor = k.devfs.paths().filter((p) => p.startsWith('/dev/vhost-vdpa-')).length;
  const v = new VhostVdpa(k, core, vdpa, ext);
  k.devfs.register(v.path, vhostVdpaFops, v);
  return v;
}

const vhostVdpaFops: FileOperations = {
  type: 'vhost-vdpa',
  open(k, file) {
    const v = file.private_data as VhostVdpa;
    return k.sim.call(FN.open, () => {
      if (v.opened) return -EBUSY;
      v.opened = true;
      if (v.ext.platformDomainAtOpen !== false) {
        const r = vhost_vdpa_alloc_domain(v);
        if (r) {
          v.opened = false;
          return r;
        }
      }
      return 0;
    });
  },
  unlocked_ioctl: (k, file, cmd, arg) => vhost_vdpa_unlocked_ioctl(k, file, cmd, arg),
  write: (k, file, buf, count) => vhost_chr_write_iter(k, file.private_data as VhostVdpa, buf, count),
  release: (k, file) => vhost_vdpa_release(k, file.private_data as VhostVdpa),
  ioctlName(cmd, file) {
    // a design's extension (the tunnel's or the RFC's ioctls) names its own
    return NAMES.get(cmd) ?? (file?.private_data as VhostVdpa | null | undefined)?.ext.ioctlName?.(cmd);
  },
};

/** vhost-vdpa's fops: exported so a design's extension can name its own ioctls through them */
export function vhostVdpaIoctlName(v: VhostVdpa, cmd: number): string {
  return NAMES.get(cmd) ?? v.ext.ioctlName?.(cmd) ?? hexCmd(cmd);
}

function vhost_vdpa_alloc_domain(v: VhostVdpa): number {
  return v.k.sim.call(FN.alloc_domain, () => {
    const dom = v.core.iommu_paging_domain_alloc_flags(v.vdpa.dma_dev, 0);
    if (IS_ERR(dom)) return dom.err;
    const ret = v.core.iommu_attach_device(dom, v.vdpa.dma_dev);
    if (ret) {
      v.core.iommu_domain_free(dom);
      return ret;
    }
    v.domain = dom;
    return 0;
  });
}

function vhost_vdpa_unlocked_ioctl(k: Kernel, file: File, cmd: number, arg: number): number {
  const v = file.private_data as VhostVdpa;
  return k.sim.call(
    FN.ioctl,
    () => {
      const argp = uptr(arg);
      switch (cmd) {
        case VHOST_SET_OWNER: {
          if (v.owner) return -EBUSY;
          v.owner = k.cur().mm;
          return 0;
        }
        case VHOST_SET_BACKEND_FEATURES: {
          const buf = new Uint8Array(8);
          if (copy_from_user(k, buf, argp, 8)) return -EFAULT;
          const f = new DataView(buf.buffer).getBigUint64(0, true);
          if (f & ~VHOST_VDPA_BACKEND_FEATURES) return -EOPNOTSUPP;
          v.backend_features = f;
          return 0;
        }
        case VHOST_GET_BACKEND_FEATURES: {
          const buf = new Uint8Array(8);
          new DataView(buf.buffer).setBigUint64(0, VHOST_VDPA_BACKEND_FEATURES, true);
          return copy_to_user(k, argp, buf, 8) ? -EFAULT : 0;
        }
        case VHOST_VDPA_GET_DEVICE_ID:
          return put_user(k, v.vdpa.device_id, argp, 4);
        case VHOST_VDPA_GET_VQS_COUNT:
          return put_user(k, v.vdpa.nvqs, argp, 4);
        case VHOST_VDPA_GET_GROUP_NUM:
          return put_user(k, v.vdpa.ngroups, argp, 4);
        case VHOST_VDPA_GET_AS_NUM:
          return put_user(k, v.vdpa.nas, argp, 4);
        case VHOST_VDPA_GET_IOVA_RANGE: {
          const g = v.domain?.geometry ?? { aperture_start: 0, aperture_end: 2 ** 48 - 1 };
          const bytes = encode(vhost_vdpa_iova_range, { first: g.aperture_start, last: g.aperture_end });
          return copy_to_user(k, argp, bytes, bytes.length) ? -EFAULT : 0;
        }
        case VHOST_VDPA_GET_VRING_GROUP:
        case VHOST_VDPA_SET_GROUP_ASID:
          return vringState(k, v, cmd, argp);
        default: {
          const r = v.ext.ioctl?.(v, cmd, arg) ?? null;
          return r === null ? -ENOTTY : r;
        }
      }
    },
    undefined,
    vhostVdpaIoctlName(v, cmd),
  );
}

/** vhost_vdpa_vring_ioctl's group cases: which group a vq is in; which ASID a group uses. */
function vringState(k: Kernel, v: VhostVdpa, cmd: number, argp: UserPtr): number {
  const buf = new Uint8Array(sizeOf(vhost_vring_state));
  if (copy_from_user(k, buf, argp, buf.length)) return -EFAULT;
  const s = decode(vhost_vring_state, buf);
  const index = s.index as number;
  if (cmd === VHOST_VDPA_GET_VRING_GROUP) {
    if (index >= v.vdpa.nvqs) return -EINVAL;
    const out = encode(vhost_vring_state, { index, num: v.vdpa.vqGroup[index]! });
    return copy_to_user(k, argp, out, out.length) ? -EFAULT : 0;
  }
  const asid = s.num as number;
  if (index >= v.vdpa.ngroups || asid >= v.vdpa.nas) return -EINVAL;
  v.vdpa.groupAsid[index] = asid;
  return 0;
}

/**
 * vhost_chr_write_iter for a V2 message: the type, the ASID and the IOTLB message are three copies
 * from the iov; the handler maps or unmaps. Returns the bytes consumed.
 */
function vhost_chr_write_iter(k: Kernel, v: VhostVdpa, buf: UserPtr, count: number): number {
  return k.sim.call(FN.write, () => {
    const msgSize = sizeOf(vhost_iotlb_msg);
    if (count < 8 + msgSize) return -EINVAL;
    const type = get_user(k, buf, 4);
    if (type.err) return type.err;
    if (type.val !== VHOST_IOTLB_MSG_V2 || !(v.backend_features & (1n << 1n))) return -EINVAL;
    const asid = get_user(k, uptr(buf + 4), 4);
    if (asid.err) return asid.err;
    const raw = new Uint8Array(msgSize);
    if (copy_from_user(k, raw, uptr(buf + 8), msgSize)) return -EFAULT;
    const msg = decode(vhost_iotlb_msg, raw);
    if ((msg.type as number) === VHOST_IOTLB_UPDATE && (msg.size as bigint) === 0n) return -EINVAL;
    const ret = vhost_vdpa_process_iotlb_msg(k, v, asid.val, msg as unknown as IotlbMsg);
    return ret ? -EFAULT : 8 + 64;
  });
}

interface IotlbMsg {
  iova: bigint;
  size: bigint;
  uaddr: bigint;
  perm: number;
  type: number;
}

function vhost_vdpa_process_iotlb_msg(k: Kernel, v: VhostVdpa, asid: number, msg: IotlbMsg): number {
  return k.sim.call(FN.msg, () => {
    mutex_lock(v.mutex);
    let ret = 0;
    // vhost_dev_check_owner: only the owner's mm may change the mappings
    if (v.owner !== k.cur().mm) ret = -EPERM;
    else if (asid >= v.vdpa.nas) ret = -EINVAL;
    else
      switch (msg.type) {
        case VHOST_IOTLB_UPDATE:
          ret = vhost_vdpa_process_iotlb_update(k, v, asid, msg);
          break;
        case VHOST_IOTLB_INVALIDATE:
          vhost_vdpa_unmap(k, v, asid, Number(msg.iova), Number(msg.size));
          break;
        case VHOST_IOTLB_BATCH_BEGIN:
          v.in_batch = true;
          break;
        case VHOST_IOTLB_BATCH_END:
          v.in_batch = false;
          break;
        default:
          ret = -EINVAL;
      }
    mutex_unlock(v.mutex);
    return ret;
  });
}

function domainOf(v: VhostVdpa, asid: number): IommuDomain | null {
  return asid === 0 && v.domain ? v.domain : (v.ext.domainForAsid?.(v, asid) ?? null);
}

function vhost_vdpa_process_iotlb_update(k: Kernel, v: VhostVdpa, asid: number, msg: IotlbMsg): number {
  return k.sim.call(FN.update, () => {
    const iova = Number(msg.iova);
    const size = Number(msg.size);
    const dom = domainOf(v, asid);
    if (!dom) return -EINVAL;
    if (iova < dom.geometry.aperture_start || iova + size - 1 > dom.geometry.aperture_end) return -EINVAL;
    const maps = v.iotlb.get(asid) ?? [];
    if (maps.some((m) => iova < m.iova + m.size && m.iova < iova + size)) return -EEXIST;
    return vhost_vdpa_pa_map(k, v, asid, dom, iova, size, Number(msg.uaddr), msg.perm);
  });
}

/** Pins the user range and maps each physically contiguous run; unwinds on failure. */
function vhost_vdpa_pa_map(k: Kernel, v: VhostVdpa, asid: number, dom: IommuDomain, iova: number, size: number, uaddr: number, perm: number): number {
  return k.sim.call(FN.pa_map, () => {
    if (iova % 4096 || uaddr % 4096 || size % 4096) return -EINVAL;
    const alloc = kzalloc(k, 'vhost_iotlb_map');
    if (!alloc) return -ENOMEM;
    const npages = size / 4096;
    const pins = new PinnedPages(k, uaddr, npages, `vhost-vdpa ${v.owner!.name}`);
    const n = pin_user_pages(k, v.owner!, uaddr, npages, pins);
    if (n < 0 || n < npages) {
      unpin_user_pages(k, pins);
      kfree(k, alloc);
      return n < 0 ? n : -EFAULT;
    }
    const prot = (perm & VHOST_ACCESS_RO ? IOMMU_READ : 0) | (perm & VHOST_ACCESS_WO ? IOMMU_WRITE : 0);
    let done = 0;
    while (done < npages) {
      let run = 1;
      while (done + run < npages && pins.pfnAt(done + run) === pins.pfnAt(done) + run) run++;
      const r = v.core.iommu_map(dom, iova + done * 4096, pins.pfnAt(done) * 4096, run * 4096, prot);
      if (r) {
        if (done) v.core.iommu_unmap(dom, iova, done * 4096);
        unpin_user_pages(k, pins);
        kfree(k, alloc);
        return r;
      }
      done += run;
    }
    v.owner!.pinnedPages += npages;
    const maps = v.iotlb.get(asid) ?? [];
    maps.push({ iova, size, pins, alloc });
    v.iotlb.set(asid, maps);
    return 0;
  });
}

/** Unmaps and unpins every mapping inside [start, start + size). */
function vhost_vdpa_unmap(k: Kernel, v: VhostVdpa, asid: number, start: number, size: number): void {
  k.sim.call(FN.unmap, () => {
    const maps = v.iotlb.get(asid) ?? [];
    const dom = domainOf(v, asid);
    const end = size === 0 ? Infinity : start + size;
    for (let i = maps.length - 1; i >= 0; i--) {
      const m = maps[i]!;
      if (m.iova < start || m.iova + m.size > end) continue;
      if (dom) v.core.iommu_unmap(dom, m.iova, m.size);
      if (v.owner) v.owner.pinnedPages -= m.pins.count;
      unpin_user_pages(k, m.pins);
      kfree(k, m.alloc);
      maps.splice(i, 1);
    }
  });
}

function vhost_vdpa_release(k: Kernel, v: VhostVdpa): void {
  k.sim.call(FN.release, () => {
    v.ext.release?.(v);
    for (const asid of [...v.iotlb.keys()]) vhost_vdpa_unmap(k, v, asid, 0, 0);
    v.iotlb.clear();
    if (v.domain) {
      v.core.iommu_detach_device(v.domain, v.vdpa.dma_dev);
      v.core.iommu_domain_free(v.domain);
      v.domain = null;
    }
    v.vdpa.groupAsid.fill(0);
    v.owner = null;
    v.backend_features = 0n;
    v.opened = false;
  });
}
