import { kfn, type KFn } from '../../sim/index.ts';
import type { Device } from '../kernel/device.ts';
import { EFAULT, EINVAL, ENOMEM, ENOTTY, EOPNOTSUPP, IS_ERR, PTR_ERR } from '../kernel/errno.ts';
import type { File, FileOperations } from '../kernel/files.ts';
import type { Kernel } from '../kernel/kernel.ts';
import { Mutex, mutex_lock, mutex_unlock } from '../kernel/locks.ts';
import { uptr, type UserPtr } from '../kernel/mm.ts';
import { kfree, kzalloc, type KAlloc } from '../kernel/slab.ts';
import { copy_from_user, copy_to_user } from '../kernel/uaccess.ts';
import {
  VFIO_DEVICE_ATTACH_PASID,
  VFIO_DEVICE_DETACH_PASID,
  decode,
  offsetOfEnd,
  sizeOf,
  vfio_device_attach_iommufd_pt,
  vfio_device_bind_iommufd,
  vfio_device_detach_iommufd_pt,
} from '../kernel/uapi/index.ts';
import { VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_BIND_IOMMUFD, VFIO_DEVICE_DETACH_IOMMUFD_PT } from '../kernel/uapi/ioctls/vfio.ts';
import type { IommuCore } from '../iommu/iommu.ts';
import type { IoPgfault } from '../iommu/io-pgfault.ts';
import { iommufd_ctx_from_fd, iommufd_ctx_put, iommufd_init } from '../iommufd/main.ts';
import type { IommufdCtx, IommufdModule } from '../iommufd/iommufd_private.ts';
import { vfio_pci_iommufd_ops, type VfioCdevDevice } from './iommufd.ts';
import { setU32 } from '../kernel/uapi/le.ts';

/**
 * The VFIO device cdev (drivers/vfio/device_cdev.c and the cdev branches of vfio_main.c @ v6.15):
 * /dev/vfio/devices/vfioN, opened without any group or container. Nothing but
 * VFIO_DEVICE_BIND_IOMMUFD works until the device is bound to an iommufd; then
 * VFIO_DEVICE_ATTACH_IOMMUFD_PT / DETACH_IOMMUFD_PT attach its RID or (with the PASID flag) a
 * PASID to an IOAS or HWPT of that iommufd, through the iommufd kernel API. VFIO parses its own
 * small structs and hands iommufd only ids: the IOMMU uAPI never passes through VFIO.
 * Read at torvalds/linux device_cdev.c @ 1260ed77 (with the 6.15 PASID members).
 */
const SRC = 'drivers/vfio/device_cdev.c @ v6.15';
const MAIN = 'drivers/vfio/vfio_main.c @ v6.15';
const fn = (name: string, sig: string, extra: Partial<KFn> = {}, source = SRC): KFn =>
  kfn({ name, layer: 'vfio', sig, prov: { kind: 'merged', source }, ...extra });
const FN = {
  open: fn('vfio_device_fops_cdev_open', 'int vfio_device_fops_cdev_open(struct inode *inode, struct file *filep)'),
  ioctl: fn('vfio_device_fops_unl_ioctl', 'static long vfio_device_fops_unl_ioctl(struct file *filep, unsigned int cmd, unsigned long arg)', {
    entry: 'ioctl',
    uapi: { param: 'arg', ctype: 'unsigned long' },
  }, MAIN),
  release: fn('vfio_device_fops_release', 'static int vfio_device_fops_release(struct inode *inode, struct file *filep)', {}, MAIN),
  bind: fn('vfio_df_ioctl_bind_iommufd', 'long vfio_df_ioctl_bind_iommufd(struct vfio_device_file *df, struct vfio_device_bind_iommufd __user *arg)', {
    uapi: { param: 'arg', ctype: 'struct vfio_device_bind_iommufd __user *' },
    handler: true,
    op: 'bind-device',
  }),
  unbind: fn('vfio_df_unbind_iommufd', 'void vfio_df_unbind_iommufd(struct vfio_device_file *df)'),
  attach_pt: fn('vfio_df_ioctl_attach_pt', 'int vfio_df_ioctl_attach_pt(struct vfio_device_file *df, struct vfio_device_attach_iommufd_pt __user *arg)', {
    uapi: { param: 'arg', ctype: 'struct vfio_device_attach_iommufd_pt __user *' },
    handler: true,
    op: 'attach',
  }),
  detach_pt: fn('vfio_df_ioctl_detach_pt', 'int vfio_df_ioctl_detach_pt(struct vfio_device_file *df, struct vfio_device_detach_iommufd_pt __user *arg)', {
    uapi: { param: 'arg', ctype: 'struct vfio_device_detach_iommufd_pt __user *' },
    handler: true,
    op: 'detach',
  }),
  df_open: fn('vfio_df_open', 'int vfio_df_open(struct vfio_device_file *df)', {}, MAIN),
  df_close: fn('vfio_df_close', 'void vfio_df_close(struct vfio_device_file *df)', {}, MAIN),
  iommufd_bind: fn('vfio_df_iommufd_bind', 'int vfio_df_iommufd_bind(struct vfio_device_file *df)', {}, 'drivers/vfio/iommufd.c @ v6.15'),
  probe: fn('vfio_device_add', 'static int vfio_device_add(struct vfio_device *device)', {}, MAIN),
};

const NAMES = new Map<number, string>([
  [VFIO_DEVICE_BIND_IOMMUFD, 'VFIO_DEVICE_BIND_IOMMUFD'],
  [VFIO_DEVICE_ATTACH_IOMMUFD_PT, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT'],
  [VFIO_DEVICE_DETACH_IOMMUFD_PT, 'VFIO_DEVICE_DETACH_IOMMUFD_PT'],
]);

/** struct vfio_device_file: one per open of the cdev */
export interface VfioDeviceFile {
  readonly device: VfioCdevDevice;
  /** the bound iommufd (a reference on its file), or null */
  iommufd: IommufdCtx | null;
  /** set once BIND_IOMMUFD succeeded: every other ioctl needs it */
  access_granted: boolean;
  devid: number;
  readonly alloc: KAlloc;
}

// ---- bind ------------------------------------------------------------------------------------

/** vfio_df_iommufd_bind: the device op binds the physical device (vfio_iommufd_physical_bind). */
function vfio_df_iommufd_bind(k: Kernel, df: VfioDeviceFile): number {
  return k.sim.call(FN.iommufd_bind, () => {
    const out = { id: 0 };
    const ret = df.device.ops.bind_iommufd(df.device, df.iommufd!, out);
    if (!ret) df.devid = out.id;
    return ret;
  });
}

/** vfio_df_open: the cdev path may open a device only once (no secure way to share it). */
function vfio_df_open(k: Kernel, df: VfioDeviceFile): number {
  return k.sim.call(FN.df_open, () => {
    const device = df.device;
    if (device.open_count !== 0) return -EINVAL;
    device.open_count++;
    // vfio_df_device_first_open: bind, then ops->open_device (vfio-pci's enable: not modelled)
    const ret = vfio_df_iommufd_bind(k, df);
    if (ret) device.open_count--;
    return ret;
  });
}

function vfio_df_close(k: Kernel, df: VfioDeviceFile): void {
  k.sim.call(FN.df_close, () => {
    const device = df.device;
    if (--device.open_count === 0) device.ops.unbind_iommufd(device); // vfio_df_device_last_close
  });
}

/**
 * VFIO_DEVICE_BIND_IOMMUFD: copies the 16-byte struct; a short argsz, any flag or a negative fd
 * is EINVAL; an fd that is not open is EBADF, one that is not an iommufd EBADFD; a second bind
 * is EINVAL. out_devid (4 B) goes back.
 */
function vfio_df_ioctl_bind_iommufd(k: Kernel, df: VfioDeviceFile, arg: UserPtr): number {
  return k.sim.call(FN.bind, () => {
    const device = df.device;
    const minsz = offsetOfEnd(vfio_device_bind_iommufd, 'out_devid');
    const raw = new Uint8Array(minsz);
    if (copy_from_user(k, raw, arg, minsz)) return -EFAULT;
    const bind = decode(vfio_device_bind_iommufd, raw);
    k.sim.recorder.validate('vfio_device_bind_iommufd', 'vfio_df_ioctl_bind_iommufd');
    if ((bind.argsz as number) < minsz || (bind.flags as number) || (bind.iommufd as number) < 0) return -EINVAL;
    // vfio_device_block_group: design B opens no group; A's group path is another module here
    mutex_lock(device.dev_set_lock);
    const out = (ret: number): number => {
      mutex_unlock(device.dev_set_lock);
      return ret;
    };
    if (df.access_granted) return out(-EINVAL);
    const ictx = iommufd_ctx_from_fd(k, bind.iommufd as number);
    if (IS_ERR(ictx)) return out(PTR_ERR(ictx));
    df.iommufd = ictx;
    let ret = vfio_df_open(k, df);
    if (!ret) {
      const b = new Uint8Array(4);
      setU32(b, 0, df.devid);
      ret = copy_to_user(k, uptr(arg + offsetOfEnd(vfio_device_bind_iommufd, 'iommufd')), b, 4) ? -EFAULT : 0;
      if (ret) vfio_df_close(k, df);
    }
    if (ret) {
      iommufd_ctx_put(ictx);
      df.iommufd = null;
      return out(ret);
    }
    device.cdev_opened = true;
    df.access_granted = true; // smp_store_release
    return out(0);
  });
}

/** vfio_df_unbind_iommufd: at release, the device is closed and unbound (detaching everything). */
function vfio_df_unbind_iommufd(k: Kernel, df: VfioDeviceFile): void {
  k.sim.call(FN.unbind, () => {
    if (!df.access_granted) return;
    const device = df.device;
    mutex_lock(device.dev_set_lock);
    vfio_df_close(k, df);
    iommufd_ctx_put(df.iommufd!);
    df.iommufd = null;
    device.cdev_opened = false;
    mutex_unlock(device.dev_set_lock);
  });
}

// ---- attach / detach ---------------------------------------------------------------------------------

/**
 * VFIO_DEVICE_ATTACH_IOMMUFD_PT: 12 bytes, plus the 4-byte pasid with VFIO_DEVICE_ATTACH_PASID
 * (a second copy); pt_id (4 B) is copied back: the HWPT an IOAS attach picked.
 */
function vfio_df_ioctl_attach_pt(k: Kernel, df: VfioDeviceFile, arg: UserPtr): number {
  return k.sim.call(FN.attach_pt, () => {
    const device = df.device;
    const minsz = offsetOfEnd(vfio_device_attach_iommufd_pt, 'pt_id');
    const raw = new Uint8Array(sizeOf(vfio_device_attach_iommufd_pt));
    if (copy_from_user(k, raw, arg, minsz)) return -EFAULT;
    let attach = decode(vfio_device_attach_iommufd_pt, raw);
    k.sim.recorder.validate('vfio_device_attach_iommufd_pt', 'vfio_df_ioctl_attach_pt');
    const flags = attach.flags as number;
    if ((attach.argsz as number) < minsz) return -EINVAL;
    if (flags & ~VFIO_DEVICE_ATTACH_PASID) return -EINVAL;
    let xend = 0;
    if (flags & VFIO_DEVICE_ATTACH_PASID) {
      if (!device.ops.pasid_attach_ioas) return -EOPNOTSUPP;
      xend = offsetOfEnd(vfio_device_attach_iommufd_pt, 'pasid');
    }
    if (xend) {
      if ((attach.argsz as number) < xend) return -EINVAL;
      if (copy_from_user(k, raw, uptr(arg + minsz), xend - minsz, minsz)) return -EFAULT;
      attach = decode(vfio_device_attach_iommufd_pt, raw);
    }
    const pt = { id: attach.pt_id as number };
    mutex_lock(device.dev_set_lock);
    let ret =
      flags & VFIO_DEVICE_ATTACH_PASID
        ? device.ops.pasid_attach_ioas!(device, attach.pasid as number, pt)
        : device.ops.attach_ioas(device, pt);
    if (!ret) {
      const b = new Uint8Array(4);
      setU32(b, 0, pt.id);
      if (copy_to_user(k, uptr(arg + offsetOfEnd(vfio_device_attach_iommufd_pt, 'flags')), b, 4)) {
        ret = -EFAULT;
        device.ops.detach_ioas(device); // out_detach: the RID's, even on the PASID path (as upstream)
      }
    }
    mutex_unlock(device.dev_set_lock);
    return ret;
  });
}

/** VFIO_DEVICE_DETACH_IOMMUFD_PT: 8 bytes, plus the pasid with VFIO_DEVICE_DETACH_PASID. */
function vfio_df_ioctl_detach_pt(k: Kernel, df: VfioDeviceFile, arg: UserPtr): number {
  return k.sim.call(FN.detach_pt, () => {
    const device = df.device;
    const minsz = offsetOfEnd(vfio_device_detach_iommufd_pt, 'flags');
    const raw = new Uint8Array(sizeOf(vfio_device_detach_iommufd_pt));
    if (copy_from_user(k, raw, arg, minsz)) return -EFAULT;
    let detach = decode(vfio_device_detach_iommufd_pt, raw);
    k.sim.recorder.validate('vfio_device_detach_iommufd_pt', 'vfio_df_ioctl_detach_pt');
    const flags = detach.flags as number;
    if ((detach.argsz as number) < minsz) return -EINVAL;
    if (flags & ~VFIO_DEVICE_DETACH_PASID) return -EINVAL;
    if (flags & VFIO_DEVICE_DETACH_PASID) {
      if (!device.ops.pasid_detach_ioas) return -EOPNOTSUPP;
      const xend = offsetOfEnd(vfio_device_detach_iommufd_pt, 'pasid');
      if ((detach.argsz as number) < xend) return -EINVAL;
      if (copy_from_user(k, raw, uptr(arg + minsz), xend - minsz, minsz)) return -EFAULT;
      detach = decode(vfio_device_detach_iommufd_pt, raw);
    }
    mutex_lock(device.dev_set_lock);
    if (flags & VFIO_DEVICE_DETACH_PASID) device.ops.pasid_detach_ioas!(device, detach.pasid as number);
    else device.ops.detach_ioas(device);
    mutex_unlock(device.dev_set_lock);
    return 0;
  });
}

// ---- the file ---------------------------------------------------------------------------------------

function vfio_device_fops_cdev_open(k: Kernel, file: File): number {
  return k.sim.call(FN.open, () => {
    const device = file.private_data as VfioCdevDevice;
    // vfio_allocate_device_file
    const alloc = kzalloc(k, 'struct vfio_device_file');
    if (!alloc) return -ENOMEM;
    file.private_data = { device, iommufd: null, access_granted: false, devid: 0, alloc } satisfies VfioDeviceFile;
    return 0;
  });
}

/** Nothing but BIND works before the bind; the cdev-only ioctls, then the device's (not modelled). */
function vfio_device_fops_unl_ioctl(k: Kernel, file: File, cmd: number, arg: number): number {
  return k.sim.call(
    FN.ioctl,
    () => {
      const df = file.private_data as VfioDeviceFile;
      const uarg = uptr(arg);
      if (cmd >>> 0 === VFIO_DEVICE_BIND_IOMMUFD) return vfio_df_ioctl_bind_iommufd(k, df, uarg);
      if (!df.access_granted) return -EINVAL;
      switch (cmd >>> 0) {
        case VFIO_DEVICE_ATTACH_IOMMUFD_PT:
          return vfio_df_ioctl_attach_pt(k, df, uarg);
        case VFIO_DEVICE_DETACH_IOMMUFD_PT:
          return vfio_df_ioctl_detach_pt(k, df, uarg);
        default:
          return -ENOTTY; // vfio-pci's own ioctls (regions, IRQs, reset) are not modelled
      }
    },
    undefined,
    NAMES.get(cmd >>> 0),
  );
}

function vfio_device_fops_release(k: Kernel, file: File): void {
  k.sim.call(FN.release, () => {
    const df = file.private_data as VfioDeviceFile;
    vfio_df_unbind_iommufd(k, df);
    kfree(k, df.alloc);
  });
}

/** struct file_operations vfio_device_fops, on the cdev */
export const vfio_device_cdev_fops: FileOperations = {
  type: 'vfio-device-cdev',
  open: vfio_device_fops_cdev_open,
  unlocked_ioctl: vfio_device_fops_unl_ioctl,
  release: vfio_device_fops_release,
  ioctlName: (cmd) => NAMES.get(cmd >>> 0),
};

/** The file's vfio_device_file, for tests. */
export function vfio_device_file_of(file: File | undefined): VfioDeviceFile | null {
  return file && file.f_op === vfio_device_cdev_fops ? (file.private_data as VfioDeviceFile) : null;
}

// ---- init ---------------------------------------------------------------------------------------------

/**
 * vfio_pci_probe → vfio_register_group_dev → vfio_device_add: the device is bound to vfio-pci and
 * its cdev /dev/vfio/devices/vfioN appears (N: the order of registration). Boot-time: not
 * slab-tracked.
 */
export function vfio_pci_cdev_probe(k: Kernel, dev: Device): VfioCdevDevice {
  return k.sim.call(FN.probe, () => {
    const index = k.devfs.paths().filter((p) => p.startsWith('/dev/vfio/devices/vfio')).length;
    dev.driver = 'vfio-pci';
    const vdev: VfioCdevDevice = {
      dev,
      index,
      dev_set_lock: new Mutex(k, `${dev.name}:dev_set->lock`),
      open_count: 0,
      cdev_opened: false,
      iommufd_device: null,
      iommufd_attached: false,
      pasids: new Set(),
      ops: vfio_pci_iommufd_ops,
    };
    k.devfs.register(`/dev/vfio/devices/vfio${index}`, vfio_device_cdev_fops, vdev);
    return vdev;
  });
}

/** What design B's module inits need from the booted platform (HostMachine fits). */
export interface IommufdPlatform {
  readonly k: Kernel;
  readonly core: IommuCore;
  readonly iopf: IoPgfault;
  readonly devices: readonly { readonly dev: Device }[];
}

/**
 * Design B's module inits, as boot runs them: iommufd (/dev/iommu), then every platform device
 * (or those given) bound to vfio-pci with its cdev. vhost-vdpa devices are probed separately
 * (vhost_vdpa_iommufd.ts).
 */
export function iommufd_stack_init(p: IommufdPlatform, devices: readonly Device[] = p.devices.map((d) => d.dev)): { mod: IommufdModule; vdevs: VfioCdevDevice[] } {
  const mod = iommufd_init(p.k, p.core, p.iopf);
  const vdevs = devices.map((dev) => vfio_pci_cdev_probe(p.k, dev));
  return { mod, vdevs };
}
