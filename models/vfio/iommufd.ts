import { kfn, type KFn } from '../../sim/index.ts';
import type { Device } from '../kernel/device.ts';
import { EINVAL, ENOMEM, IS_ERR, PTR_ERR } from '../kernel/errno.ts';
import type { Mutex } from '../kernel/locks.ts';
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

/**
 * VFIO's side of iommufd (drivers/vfio/iommufd.c @ v6.15), the "physical" ops a vfio-pci device
 * uses: bind the device to an iommufd (iommufd_device_bind), attach its RID or a PASID to an IOAS
 * or HWPT (the kernel API of device.c: attaching what is attached replaces it), detach, unbind.
 * PASIDs the user attached are kept in an ida so unbind can detach them all.
 * Read against the v6.15 PASID patches ("vfio: VFIO_DEVICE_[AT|DE]TACH_IOMMUFD_PT support pasid").
 */
const SRC = 'drivers/vfio/iommufd.c @ v6.15';
const fn = (name: string, sig: string): KFn => kfn({ name, layer: 'vfio', sig, prov: { kind: 'merged', source: SRC } });
const FN = {
  bind: fn('vfio_iommufd_physical_bind', 'int vfio_iommufd_physical_bind(struct vfio_device *vdev, struct iommufd_ctx *ictx, u32 *out_device_id)'),
  unbind: fn('vfio_iommufd_physical_unbind', 'void vfio_iommufd_physical_unbind(struct vfio_device *vdev)'),
  attach: fn('vfio_iommufd_physical_attach_ioas', 'int vfio_iommufd_physical_attach_ioas(struct vfio_device *vdev, u32 *pt_id)'),
  detach: fn('vfio_iommufd_physical_detach_ioas', 'void vfio_iommufd_physical_detach_ioas(struct vfio_device *vdev)'),
  pasid_attach: fn('vfio_iommufd_physical_pasid_attach_ioas', 'int vfio_iommufd_physical_pasid_attach_ioas(struct vfio_device *vdev, u32 pasid, u32 *pt_id)'),
  pasid_detach: fn('vfio_iommufd_physical_pasid_detach_ioas', 'void vfio_iommufd_physical_pasid_detach_ioas(struct vfio_device *vdev, u32 pasid)'),
};

/** struct vfio_device, as design B's cdev path sees it (design A's lives in vfio.ts, v5.12) */
export interface VfioCdevDevice {
  readonly dev: Device;
  /** vfioN: the cdev's index */
  readonly index: number;
  /** dev_set->lock: every cdev ioctl that changes the binding takes it */
  readonly dev_set_lock: Mutex;
  /** open_count: the cdev path allows one open at a time */
  open_count: number;
  cdev_opened: boolean;
  iommufd_device: IommufdDevice | null;
  iommufd_attached: boolean;
  /** vdev->pasids (an ida): the PASIDs attached through this device */
  readonly pasids: Set<number>;
  /** vfio-pci's ops: the physical iommufd ones */
  readonly ops: VfioIommufdOps;
}

/** the iommufd members of struct vfio_device_ops */
export interface VfioIommufdOps {
  bind_iommufd(vdev: VfioCdevDevice, ictx: IommufdCtx, out_device_id: { id: number }): number;
  unbind_iommufd(vdev: VfioCdevDevice): void;
  attach_ioas(vdev: VfioCdevDevice, pt_id: { id: number }): number;
  detach_ioas(vdev: VfioCdevDevice): void;
  pasid_attach_ioas?(vdev: VfioCdevDevice, pasid: number, pt_id: { id: number }): number;
  pasid_detach_ioas?(vdev: VfioCdevDevice, pasid: number): void;
}

const kOf = (vdev: VfioCdevDevice) => vdev.dev_set_lock.k;

export function vfio_iommufd_physical_bind(vdev: VfioCdevDevice, ictx: IommufdCtx, out_device_id: { id: number }): number {
  return kOf(vdev).sim.call(FN.bind, () => {
    const idev = iommufd_device_bind(ictx, vdev.dev, out_device_id);
    if (IS_ERR(idev)) return PTR_ERR(idev);
    vdev.iommufd_device = idev;
    vdev.pasids.clear(); // ida_init
    return 0;
  });
}

/** Unbind detaches whatever the user left attached: every PASID, then the RID. */
export function vfio_iommufd_physical_unbind(vdev: VfioCdevDevice): void {
  kOf(vdev).sim.call(FN.unbind, () => {
    const idev = vdev.iommufd_device!;
    // while ((pasid = ida_find_first(&vdev->pasids)) >= 0)
    for (const pasid of [...vdev.pasids].sort((a, b) => a - b)) {
      iommufd_device_detach(idev, pasid);
      vdev.pasids.delete(pasid);
    }
    if (vdev.iommufd_attached) {
      iommufd_device_detach(idev, IOMMU_NO_PASID);
      vdev.iommufd_attached = false;
    }
    iommufd_device_unbind(idev);
    vdev.iommufd_device = null;
  });
}

/** The RID: attach, or replace when already attached (re-attaching is how userspace replaces). */
export function vfio_iommufd_physical_attach_ioas(vdev: VfioCdevDevice, pt_id: { id: number }): number {
  return kOf(vdev).sim.call(FN.attach, () => {
    if (!vdev.iommufd_device) return -EINVAL; // WARN_ON
    const rc = vdev.iommufd_attached
      ? iommufd_device_replace(vdev.iommufd_device, IOMMU_NO_PASID, pt_id)
      : iommufd_device_attach(vdev.iommufd_device, IOMMU_NO_PASID, pt_id);
    if (rc) return rc;
    vdev.iommufd_attached = true;
    return 0;
  });
}

export function vfio_iommufd_physical_detach_ioas(vdev: VfioCdevDevice): void {
  kOf(vdev).sim.call(FN.detach, () => {
    if (!vdev.iommufd_device || !vdev.iommufd_attached) return;
    iommufd_device_detach(vdev.iommufd_device, IOMMU_NO_PASID);
    vdev.iommufd_attached = false;
  });
}

/**
 * A PASID: a PASID in the ida is replaced (hitless in the driver); a new one is reserved in the
 * ida and attached, and released again if the attach fails.
 */
export function vfio_iommufd_physical_pasid_attach_ioas(vdev: VfioCdevDevice, pasid: number, pt_id: { id: number }): number {
  const k = kOf(vdev);
  return k.sim.call(FN.pasid_attach, () => {
    if (!vdev.iommufd_device) return -EINVAL; // WARN_ON
    if (vdev.pasids.has(pasid)) return iommufd_device_replace(vdev.iommufd_device, pasid, pt_id);
    // ida_alloc_range(&vdev->pasids, pasid, pasid): an allocation
    if (k.sim.allocHook('ida_alloc_range(vdev->pasids)')) return -ENOMEM;
    vdev.pasids.add(pasid);
    const rc = iommufd_device_attach(vdev.iommufd_device, pasid, pt_id);
    if (rc) vdev.pasids.delete(pasid);
    return rc;
  });
}

/** A PASID the ida does not hold is ignored. */
export function vfio_iommufd_physical_pasid_detach_ioas(vdev: VfioCdevDevice, pasid: number): void {
  kOf(vdev).sim.call(FN.pasid_detach, () => {
    if (!vdev.iommufd_device || !vdev.pasids.has(pasid)) return;
    iommufd_device_detach(vdev.iommufd_device, pasid);
    vdev.pasids.delete(pasid);
  });
}

/** vfio_pci_ops' iommufd members (drivers/vfio/pci/vfio_pci.c): the physical set */
export const vfio_pci_iommufd_ops: VfioIommufdOps = {
  bind_iommufd: vfio_iommufd_physical_bind,
  unbind_iommufd: vfio_iommufd_physical_unbind,
  attach_ioas: vfio_iommufd_physical_attach_ioas,
  detach_ioas: vfio_iommufd_physical_detach_ioas,
  pasid_attach_ioas: vfio_iommufd_physical_pasid_attach_ioas,
  pasid_detach_ioas: vfio_iommufd_physical_pasid_detach_ioas,
};
