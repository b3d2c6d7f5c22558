import { kfn, type KFn } from '../../sim/index.ts';
import type { Device } from '../kernel/device.ts';
import { EBADF, EBUSY, EFAULT, EINVAL, ENODEV, ENOMEM, ENOTTY } from '../kernel/errno.ts';
import { File, type FileOperations } from '../kernel/files.ts';
import { _IO } from '../kernel/ioctl.ts';
import type { Kernel } from '../kernel/kernel.ts';
import { RwSem, down_read, down_write, up_read, up_write } from '../kernel/locks.ts';
import { uptr } from '../kernel/mm.ts';
import { kfree, kzalloc, type KAlloc } from '../kernel/slab.ts';
import { copy_from_user, copy_to_user, get_user } from '../kernel/uaccess.ts';
import {
  VFIO_API_VERSION,
  VFIO_GROUP_FLAGS_CONTAINER_SET,
  VFIO_GROUP_FLAGS_VIABLE,
  decode,
  encode,
  offsetOfEnd,
  vfio_group_status,
} from '../kernel/uapi/index.ts';
import type { IommuCore } from '../iommu/iommu.ts';
import type { IntelIommu } from '../iommu/intel/iommu.ts';
import { intel_svm_v8_init } from '../iommu/intel/svm_v8.ts';
import type { IntelPrq } from '../iommu/intel/prq.ts';
import { ioasid_user_init } from '../iommu/ioasid.ts';
import type { IommuGroup } from '../iommu/types.ts';
import { vfio_iommu_type1_init } from './vfio_iommu_type1.ts';
import { VFIO_PCI_IOCTL_NAMES, vfio_pci_device_alloc, vfio_pci_init, vfio_pci_ioctl, vfio_pci_open, vfio_pci_release, vfio_pci_rw, type VfioPciDevice } from './vfio_pci.ts';

/**
 * The VFIO core (drivers/vfio/vfio.c @ v5.12): the container (/dev/vfio/vfio), group fds
 * (/dev/vfio/<iommu group id>) and device fds. The container handles GET_API_VERSION,
 * CHECK_EXTENSION and SET_IOMMU itself and hands every other ioctl, unparsed, to the IOMMU
 * driver (type1). A group's last reference going (close of its fd, or of its last device fd)
 * detaches it from the container in the context of whichever task dropped it.
 *
 * Era artifact: v5.12 claimed no DMA ownership (iommu_group_claim_dma_owner came in 5.19): the
 * group is checked viable (every device bound to vfio-pci or to nothing) and type1 attaches it.
 */
const VFIO_C: KFn['prov'] = { kind: 'merged', source: 'drivers/vfio/vfio.c @ v5.12' };
const ARG = { param: 'arg', ctype: 'unsigned long' } as const;
const fn = (name: string, sig: string, extra: Partial<KFn> = {}): KFn => kfn({ name, layer: 'vfio', sig, prov: VFIO_C, ...extra });
const FN = {
  fops_open: fn('vfio_fops_open', 'static int vfio_fops_open(struct inode *inode, struct file *filep)'),
  fops_release: fn('vfio_fops_release', 'static int vfio_fops_release(struct inode *inode, struct file *filep)'),
  fops_ioctl: fn('vfio_fops_unl_ioctl', 'static long vfio_fops_unl_ioctl(struct file *filep, unsigned int cmd, unsigned long arg)', { entry: 'ioctl', uapi: ARG }),
  check_ext: fn('vfio_ioctl_check_extension', 'static long vfio_ioctl_check_extension(struct vfio_container *container, unsigned long arg)'),
  set_iommu: fn('vfio_ioctl_set_iommu', 'static long vfio_ioctl_set_iommu(struct vfio_container *container, unsigned long arg)'),
  attach_groups: fn('__vfio_container_attach_groups', 'static int __vfio_container_attach_groups(struct vfio_container *container, struct vfio_iommu_driver *driver, void *data)'),
  group_open: fn('vfio_group_fops_open', 'static int vfio_group_fops_open(struct inode *inode, struct file *filep)'),
  group_release: fn('vfio_group_fops_release', 'static int vfio_group_fops_release(struct inode *inode, struct file *filep)'),
  group_ioctl: fn('vfio_group_fops_unl_ioctl', 'static long vfio_group_fops_unl_ioctl(struct file *filep, unsigned int cmd, unsigned long arg)', { entry: 'ioctl', uapi: ARG }),
  set_container: fn('vfio_group_set_container', 'static int vfio_group_set_container(struct vfio_group *group, int container_fd)'),
  unset_container: fn('vfio_group_unset_container', 'static int vfio_group_unset_container(struct vfio_group *group)'),
  __unset_container: fn('__vfio_group_unset_container', 'static void __vfio_group_unset_container(struct vfio_group *group)'),
  try_dissolve: fn('vfio_group_try_dissolve_container', 'static void vfio_group_try_dissolve_container(struct vfio_group *group)'),
  get_device_fd: fn('vfio_group_get_device_fd', 'static int vfio_group_get_device_fd(struct vfio_group *group, char *buf)'),
  strndup_user: kfn({ name: 'strndup_user', layer: 'vfio', sig: 'char *strndup_user(const char __user *s, long n)', prov: { kind: 'merged', source: 'mm/util.c @ v5.12' } }),
  device_release: fn('vfio_device_fops_release', 'static int vfio_device_fops_release(struct inode *inode, struct file *filep)'),
  device_read: fn('vfio_device_fops_read', 'static ssize_t vfio_device_fops_read(struct file *filep, char __user *buf, size_t count, loff_t *ppos)'),
  device_write: fn('vfio_device_fops_write', 'static ssize_t vfio_device_fops_write(struct file *filep, const char __user *buf, size_t count, loff_t *ppos)'),
  device_ioctl: fn('vfio_device_fops_unl_ioctl', 'static long vfio_device_fops_unl_ioctl(struct file *filep, unsigned int cmd, unsigned long arg)', { entry: 'ioctl', uapi: ARG }),
  container_release: fn('vfio_container_release', 'static void vfio_container_release(struct kref *kref)'),
  add_group_dev: fn('vfio_add_group_dev', 'int vfio_add_group_dev(struct device *dev, const struct vfio_device_ops *ops, void *device_data)'),
  init: fn('vfio_init', 'static int __init vfio_init(void)'),
};

// ---- ioctl numbers: the uAPI's (include/uapi/linux/vfio.h) ------------------------------------------
import {
  VFIO_CHECK_EXTENSION,
  VFIO_DEVICE_GET_INFO,
  VFIO_GET_API_VERSION,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER,
  VFIO_SET_IOMMU,
} from '../kernel/uapi/ioctls/vfio.ts';
export {
  VFIO_CHECK_EXTENSION,
  VFIO_DEVICE_GET_INFO,
  VFIO_GET_API_VERSION,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER,
  VFIO_SET_IOMMU,
};
export {
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_NESTING_OP,
  VFIO_IOMMU_UNMAP_DMA,
} from './vfio_iommu_type1.ts';

const CONTAINER_NAMES: ReadonlyMap<number, string> = new Map([
  [VFIO_GET_API_VERSION, 'VFIO_GET_API_VERSION'],
  [VFIO_CHECK_EXTENSION, 'VFIO_CHECK_EXTENSION'],
  [VFIO_SET_IOMMU, 'VFIO_SET_IOMMU'],
]);
const GROUP_NAMES: ReadonlyMap<number, string> = new Map([
  [VFIO_GROUP_GET_STATUS, 'VFIO_GROUP_GET_STATUS'],
  [VFIO_GROUP_SET_CONTAINER, 'VFIO_GROUP_SET_CONTAINER'],
  [VFIO_GROUP_UNSET_CONTAINER, 'VFIO_GROUP_UNSET_CONTAINER'],
  [VFIO_GROUP_GET_DEVICE_FD, 'VFIO_GROUP_GET_DEVICE_FD'],
]);

/** struct vfio_iommu_driver_ops, reduced to what the container uses */
export interface VfioIommuDriverOps {
  readonly name: string;
  open(arg: number): unknown;
  release(data: unknown): void;
  ioctl(data: unknown, cmd: number, arg: number): number;
  attach_group(data: unknown, group: IommuGroup): number;
  detach_group(data: unknown, group: IommuGroup): void;
  /** the driver's ioctl names, for the results */
  ioctlName?(cmd: number): string | undefined;
}

/** struct vfio_container */
export interface VfioContainer {
  readonly group_list: VfioGroup[];
  iommu_driver: VfioIommuDriverOps | null;
  iommu_data: unknown;
  readonly group_lock: RwSem;
  kref: number;
  readonly alloc: KAlloc;
}

/** struct vfio_device: a vfio-pci function */
export interface VfioDevice {
  readonly dev: Device;
  readonly group: VfioGroup;
  refcnt: number;
  /** the bus driver's device_data (struct vfio_pci_device) */
  readonly vdev: VfioPciDevice;
}

/** struct vfio_group: one per IOMMU group that has a VFIO-bound device */
export interface VfioGroup {
  readonly id: number;
  readonly iommu_group: IommuGroup;
  readonly device_list: VfioDevice[];
  opened: boolean;
  container: VfioContainer | null;
  container_users: number;
}

/** The VFIO core's global state (struct vfio). */
export interface VfioModule {
  readonly k: Kernel;
  readonly core: IommuCore;
  readonly iommu_drivers_list: VfioIommuDriverOps[];
  readonly iommu_drivers_lock: RwSem;
  readonly groups: Map<number, VfioGroup>;
}

const modules = new WeakMap<Kernel, VfioModule>();

function vfio(k: Kernel): VfioModule {
  const m = modules.get(k);
  if (!m) throw new Error('vfio: vfio_init has not run');
  return m;
}

/** vfio_register_iommu_driver: type1's module init adds itself. */
export function vfio_register_iommu_driver(k: Kernel, ops: VfioIommuDriverOps): void {
  vfio(k).iommu_drivers_list.push(ops);
}

// ---- container -----------------------------------------------------------------------------------

function vfio_fops_open(k: Kernel, file: File): number {
  return k.sim.call(FN.fops_open, () => {
    const alloc = kzalloc(k, 'vfio_container');
    if (!alloc) return -ENOMEM;
    const container: VfioContainer = { group_list: [], iommu_driver: null, iommu_data: null, group_lock: new RwSem(k, 'container->group_lock'), kref: 1, alloc };
    file.private_data = container;
    return 0;
  });
}

function vfio_container_put(k: Kernel, c: VfioContainer): void {
  if (--c.kref === 0) k.sim.call(FN.container_release, () => kfree(k, c.alloc));
}

function vfio_fops_release(k: Kernel, file: File): void {
  k.sim.call(FN.fops_release, () => {
    const c = file.private_data as VfioContainer;
    file.private_data = null;
    vfio_container_put(k, c);
  });
}

function vfio_ioctl_check_extension(k: Kernel, c: VfioContainer, arg: number): number {
  return k.sim.call(FN.check_ext, () => {
    let ret = 0;
    down_read(c.group_lock);
    const driver = c.iommu_driver;
    if (!driver) {
      down_read(vfio(k).iommu_drivers_lock);
      for (const d of vfio(k).iommu_drivers_list) {
        ret = d.ioctl(null, VFIO_CHECK_EXTENSION, arg);
        if (ret > 0) break;
      }
      up_read(vfio(k).iommu_drivers_lock);
    } else ret = driver.ioctl(c.iommu_data, VFIO_CHECK_EXTENSION, arg);
    up_read(c.group_lock);
    return ret;
  });
}

function __vfio_container_attach_groups(k: Kernel, c: VfioContainer, driver: VfioIommuDriverOps, data: unknown): number {
  return k.sim.call(FN.attach_groups, () => {
    const done: VfioGroup[] = [];
    for (const g of c.group_list) {
      const ret = driver.attach_group(data, g.iommu_group);
      if (ret) {
        for (const u of done) driver.detach_group(data, u.iommu_group);
        return ret;
      }
      done.push(g);
    }
    return 0;
  });
}

/**
 * SET_IOMMU: only a container with a group may enable an IOMMU driver; the first driver that
 * claims the extension opens its state and attaches every group of the container.
 */
function vfio_ioctl_set_iommu(k: Kernel, c: VfioContainer, arg: number): number {
  const m = vfio(k);
  return k.sim.call(FN.set_iommu, () => {
    let ret = -ENODEV;
    down_write(c.group_lock);
    if (!c.group_list.length || c.iommu_driver) {
      up_write(c.group_lock);
      return -EINVAL;
    }
    down_read(m.iommu_drivers_lock);
    for (const driver of m.iommu_drivers_list) {
      if (driver.ioctl(null, VFIO_CHECK_EXTENSION, arg) <= 0) continue;
      const data = driver.open(arg);
      if (typeof data === 'number') {
        ret = data;
        continue;
      }
      ret = __vfio_container_attach_groups(k, c, driver, data);
      if (ret) {
        driver.release(data);
        continue;
      }
      c.iommu_driver = driver;
      c.iommu_data = data;
      break;
    }
    up_read(m.iommu_drivers_lock);
    up_write(c.group_lock);
    return ret;
  });
}

function vfio_fops_unl_ioctl(k: Kernel, file: File, cmd: number, arg: number): number {
  return k.sim.call(FN.fops_ioctl, () => {
    const c = file.private_data as VfioContainer | null;
    if (!c) return -EINVAL;
    switch (cmd >>> 0) {
      case VFIO_GET_API_VERSION:
        return VFIO_API_VERSION;
      case VFIO_CHECK_EXTENSION:
        return vfio_ioctl_check_extension(k, c, arg);
      case VFIO_SET_IOMMU:
        return vfio_ioctl_set_iommu(k, c, arg);
      default:
        // passthrough all unrecognized ioctls, unparsed
        return c.iommu_driver ? c.iommu_driver.ioctl(c.iommu_data, cmd, arg) : -EINVAL;
    }
  });
}

function containerFops(k: Kernel): FileOperations {
  return {
    type: 'vfio-container',
    open: vfio_fops_open,
    release: vfio_fops_release,
    unlocked_ioctl: vfio_fops_unl_ioctl,
    ioctlName: (cmd) => CONTAINER_NAMES.get(cmd >>> 0) ?? vfio(k).iommu_drivers_list[0]?.ioctlName?.(cmd),
  };
}

// ---- group ---------------------------------------------------------------------------------------

/** vfio_group_viable: every device is bound to vfio-pci or to no driver */
function vfio_group_viable(g: VfioGroup): boolean {
  return g.iommu_group.devices.every((d) => d.driver === null || d.driver === 'vfio-pci');
}

function vfio_group_fops_open(k: Kernel, file: File): number {
  return k.sim.call(FN.group_open, () => {
    const g = file.private_data as VfioGroup;
    // "Do we need multiple instances of the group open?  Seems not."
    if (g.opened) return -EBUSY;
    // "Is something still in use from a previous open?"
    if (g.container) return -EBUSY;
    g.opened = true;
    return 0;
  });
}

function __vfio_group_unset_container(k: Kernel, g: VfioGroup): void {
  k.sim.call(FN.__unset_container, () => {
    const c = g.container!;
    down_write(c.group_lock);
    const driver = c.iommu_driver;
    if (driver) driver.detach_group(c.iommu_data, g.iommu_group);
    g.container = null;
    c.group_list.splice(c.group_list.indexOf(g), 1);
    // "Detaching the last group deprivileges a container, remove iommu"
    if (driver && !c.group_list.length) {
      driver.release(c.iommu_data);
      c.iommu_driver = null;
      c.iommu_data = null;
    }
    up_write(c.group_lock);
    vfio_container_put(k, c);
  });
}

function vfio_group_try_dissolve_container(k: Kernel, g: VfioGroup): void {
  k.sim.call(FN.try_dissolve, () => {
    // atomic_dec_if_positive(&group->container_users) == 0
    if (g.container_users > 0 && --g.container_users === 0) __vfio_group_unset_container(k, g);
  });
}

function vfio_group_fops_release(k: Kernel, file: File): void {
  k.sim.call(FN.group_release, () => {
    const g = file.private_data as VfioGroup;
    vfio_group_try_dissolve_container(k, g);
    g.opened = false;
  });
}

function vfio_group_set_container(k: Kernel, g: VfioGroup, container_fd: number): number {
  return k.sim.call(FN.set_container, () => {
    if (g.container_users) return -EINVAL;
    const f = k.cur().process.files.get(container_fd);
    if (!f) return -EBADF;
    // "Sanity check, is this really our fd?"
    if (f.f_op.type !== 'vfio-container') return -EINVAL;
    const c = f.private_data as VfioContainer;
    down_write(c.group_lock);
    let ret = 0;
    const driver = c.iommu_driver;
    if (driver) ret = driver.attach_group(c.iommu_data, g.iommu_group);
    if (!ret) {
      g.container = c;
      c.group_list.push(g);
      c.kref++;
      g.container_users++;
    }
    up_write(c.group_lock);
    return ret;
  });
}

function vfio_group_unset_container(k: Kernel, g: VfioGroup): number {
  return k.sim.call(FN.unset_container, () => {
    if (!g.container_users) return -EINVAL;
    if (g.container_users !== 1) return -EBUSY; // device fds still open
    g.container_users = 0;
    __vfio_group_unset_container(k, g);
    return 0;
  });
}

/** strndup_user: the name's length (strnlen_user), then memdup_user: a kmalloc and one copy. */
function strndup_user(k: Kernel, s: number, n: number): { name: string; alloc: KAlloc } | number {
  return k.sim.call(FN.strndup_user, () => {
    const mm = k.cur().mm;
    const one = new Uint8Array(1);
    let len = 0;
    for (; len < n; len++) {
      if (mm.access(s + len, one, 0, 1, false)) return -EFAULT;
      if (one[0] === 0) break;
    }
    if (len === n) return -EINVAL;
    const alloc = kzalloc(k, 'strndup_user');
    if (!alloc) return -ENOMEM;
    const buf = new Uint8Array(len + 1);
    if (copy_from_user(k, buf, uptr(s), len + 1)) {
      kfree(k, alloc);
      return -EFAULT;
    }
    return { name: new TextDecoder().decode(buf.subarray(0, len)), alloc };
  });
}

/** The device fd: vfio_device_fops hand everything to the bus driver (vfio-pci). */
function deviceFops(): FileOperations {
  return {
    type: 'vfio-device',
    unlocked_ioctl: (k, file, cmd, arg) => k.sim.call(FN.device_ioctl, () => vfio_pci_ioctl((file.private_data as VfioDevice).vdev, cmd, arg)),
    read: (k, file, buf, count, pos) => k.sim.call(FN.device_read, () => vfio_pci_rw((file.private_data as VfioDevice).vdev, buf, count, pos ?? 0, false)),
    write: (k, file, buf, count, pos) => k.sim.call(FN.device_write, () => vfio_pci_rw((file.private_data as VfioDevice).vdev, buf, count, pos ?? 0, true)),
    release: (k, file) =>
      k.sim.call(FN.device_release, () => {
        const d = file.private_data as VfioDevice;
        if (--d.refcnt === 0) vfio_pci_release(d.vdev);
        vfio_group_try_dissolve_container(k, d.group);
      }),
    ioctlName: (cmd) => VFIO_PCI_IOCTL_NAMES.get(cmd >>> 0),
  };
}

function vfio_group_get_device_fd(k: Kernel, g: VfioGroup, name: string): number {
  return k.sim.call(FN.get_device_fd, () => {
    if (!g.container_users || !g.container!.iommu_driver || !vfio_group_viable(g)) return -EINVAL;
    const device = g.device_list.find((d) => d.dev.bdf === name || d.dev.name === name);
    if (!device) return -ENODEV;
    const alloc = kzalloc(k, 'struct file');
    if (!alloc) return -ENOMEM;
    // device->ops->open: vfio-pci's first open enables the device (and its nested fault regions)
    if (device.refcnt === 0) {
      const ret = vfio_pci_open(device.vdev);
      if (ret) {
        kfree(k, alloc);
        return ret;
      }
    }
    device.refcnt++;
    const file = new File(deviceFops(), '[vfio-device]', alloc);
    file.private_data = device;
    file.opened = true;
    g.container_users++;
    const task = k.cur();
    return task.process.files.install(file, task.process.comm);
  });
}

function vfio_group_fops_unl_ioctl(k: Kernel, file: File, cmd: number, arg: number): number {
  return k.sim.call(FN.group_ioctl, () => {
    const g = file.private_data as VfioGroup;
    switch (cmd >>> 0) {
      case VFIO_GROUP_GET_STATUS: {
        const minsz = offsetOfEnd(vfio_group_status, 'flags');
        const buf = new Uint8Array(minsz);
        if (copy_from_user(k, buf, uptr(arg), minsz)) return -EFAULT;
        const status = decode(vfio_group_status, buf);
        if ((status.argsz as number) < minsz) return -EINVAL;
        status.flags = (vfio_group_viable(g) ? VFIO_GROUP_FLAGS_VIABLE : 0) | (g.container ? VFIO_GROUP_FLAGS_CONTAINER_SET : 0);
        return copy_to_user(k, uptr(arg), encode(vfio_group_status, status), minsz) ? -EFAULT : 0;
      }
      case VFIO_GROUP_SET_CONTAINER: {
        const { err, val } = get_user(k, uptr(arg), 4);
        if (err) return -EFAULT;
        const fd = val | 0;
        if (fd < 0) return -EINVAL;
        return vfio_group_set_container(k, g, fd);
      }
      case VFIO_GROUP_UNSET_CONTAINER:
        return vfio_group_unset_container(k, g);
      case VFIO_GROUP_GET_DEVICE_FD: {
        const buf = strndup_user(k, arg, 4096);
        if (typeof buf === 'number') return buf;
        const ret = vfio_group_get_device_fd(k, g, buf.name);
        kfree(k, buf.alloc);
        return ret;
      }
      default:
        return -ENOTTY;
    }
  });
}

const groupFops: FileOperations = {
  type: 'vfio-group',
  open: vfio_group_fops_open,
  release: vfio_group_fops_release,
  unlocked_ioctl: vfio_group_fops_unl_ioctl,
  ioctlName: (cmd) => GROUP_NAMES.get(cmd >>> 0),
};

/**
 * vfio_pci_probe → vfio_add_group_dev: the device is bound to vfio-pci, its IOMMU group gets a
 * vfio_group and /dev/vfio/<group id> appears. Boot-time objects: not slab-tracked.
 */
export function vfio_pci_probe(k: Kernel, dev: Device): VfioGroup {
  const m = vfio(k);
  return k.sim.call(FN.add_group_dev, () => {
    const ig = m.core.iommu_group_get(dev);
    if (!ig) throw new Error(`vfio: ${dev.name} has no IOMMU group`);
    dev.driver = 'vfio-pci';
    let g = m.groups.get(ig.id);
    if (!g) {
      g = { id: ig.id, iommu_group: ig, device_list: [], opened: false, container: null, container_users: 0 };
      m.groups.set(ig.id, g);
      k.devfs.register(`/dev/vfio/${ig.id}`, groupFops, g);
    }
    if (!g.device_list.some((d) => d.dev === dev)) g.device_list.push({ dev, group: g, refcnt: 0, vdev: vfio_pci_device_alloc(k, dev) });
    return g;
  });
}

/** module_init(vfio_init): misc_register of /dev/vfio/vfio. */
export function vfio_init(k: Kernel, core: IommuCore): VfioModule {
  return k.sim.call(FN.init, () => {
    const m: VfioModule = { k, core, iommu_drivers_list: [], iommu_drivers_lock: new RwSem(k, 'vfio.iommu_drivers_lock'), groups: new Map() };
    modules.set(k, m);
    k.devfs.register('/dev/vfio/vfio', containerFops(k), null);
    return m;
  });
}

/** What design A's module inits need from the booted platform (HostMachine fits). */
export interface TunnelPlatform {
  readonly k: Kernel;
  readonly core: IommuCore;
  readonly iommu: IntelIommu;
  readonly prq: IntelPrq;
  readonly devices: readonly { readonly dev: Device }[];
}

/**
 * Design A's module inits, as boot runs them: vfio, vfio_iommu_type1, /dev/ioasid, the VT-d
 * driver's v8 entry points; then every platform device (or those given) is bound to vfio-pci.
 */
export function tunnel_init(p: TunnelPlatform, devices: readonly Device[] = p.devices.map((d) => d.dev)): VfioModule {
  const m = vfio_init(p.k, p.core);
  vfio_iommu_type1_init(p.k, p.core);
  ioasid_user_init(p.k);
  intel_svm_v8_init(p.iommu, p.core, p.prq);
  vfio_pci_init(p.k, p.core, p.prq.iopf);
  for (const dev of devices) vfio_pci_probe(p.k, dev);
  return m;
}

/** The container behind an open container fd, for tests. */
export function vfio_container_of(file: File | undefined): VfioContainer | null {
  return file && file.f_op.type === 'vfio-container' ? (file.private_data as VfioContainer) : null;
}

