import { kfn, type KFn } from '../../sim/index.ts';
import type { Device } from '../kernel/device.ts';
import { EBUSY, EFAULT, EINVAL, ENODEV, ENOMEM, EOPNOTSUPP, EPERM, ERR_PTR, IS_ERR, PTR_ERR, type ErrPtr } from '../kernel/errno.ts';
import { fput, get_file } from '../kernel/files.ts';
import { Mutex, mutex_lock, mutex_unlock } from '../kernel/locks.ts';
import { uptr } from '../kernel/mm.ts';
import { kfree, kzalloc, type KAlloc } from '../kernel/slab.ts';
import { copy_to_user } from '../kernel/uaccess.ts';
import { IOMMU_HW_CAP_DIRTY_TRACKING, IOMMU_HW_INFO_TYPE_NONE, sizeOf } from '../kernel/uapi/index.ts';
import { IOMMU_NO_PASID, type IommuAttachHandle, type IommuGroup, type IommuOps } from '../iommu/types.ts';
import {
  find_hwpt_paging,
  iommufd_hw_pagetable_put,
  iommufd_hwpt_paging_alloc,
  type IommufdHwPagetable,
  type IommufdHwptPaging,
} from './hw_pagetable.ts';
import { iommufd_auto_response_faults, iommufd_fault_iopf_disable, iommufd_fault_iopf_enable } from './fault.ts';
import { iopt_remove_reserved_iova, iopt_table_enforce_dev_resv_regions } from './io_pagetable.ts';
import type { IommufdIoas } from './ioas.ts';
import {
  iommufd_get_object,
  iommufd_lock_obj,
  iommufd_object_abort_and_destroy,
  iommufd_object_alloc,
  iommufd_object_destroy_user,
  iommufd_object_finalize,
  iommufd_object_get_users,
  iommufd_object_put_users,
  iommufd_put_object,
  iommufd_register_object_ops,
  iommufd_ucmd_respond,
  u32,
  u64,
  type IommufdCtx,
  type IommufdObject,
  type IommufdUcmd,
} from './iommufd_private.ts';

/**
 * Devices in an iommufd (drivers/iommu/iommufd/device.c @ v6.15): the kernel API a device driver
 * (VFIO cdev, vDPA, the selftest) uses to bind a device to an ictx and attach its RID or a PASID
 * to an IOAS (auto domain) or an HWPT; and IOMMU_GET_HW_INFO.
 *
 * Attachments are kept per IOMMU group (iommufd_group) and per PASID (igroup->pasid_attach): only
 * the first device of a group attaches the group, later ones only join; every attached device
 * holds one `users` on the HWPT. Read against device.c with the 6.15 PASID rework (pasid_attach,
 * iommufd_hwpt_pasid_compat) and its IOPF enable / auto-response for fault-capable HWPTs (fault.ts).
 */
const SRC = 'drivers/iommu/iommufd/device.c @ v6.15';
const fn = (name: string, sig: string): KFn => kfn({ name, layer: 'iommufd', sig, prov: { kind: 'merged', source: SRC } });

const FN = {
  get_group: fn('iommufd_get_group', 'static struct iommufd_group *iommufd_get_group(struct iommufd_ctx *ictx, struct device *dev)'),
  group_release: fn('iommufd_group_release', 'static void iommufd_group_release(struct kref *kref)'),
  destroy: fn('iommufd_device_destroy', 'void iommufd_device_destroy(struct iommufd_object *obj)'),
  bind: fn('iommufd_device_bind', 'struct iommufd_device *iommufd_device_bind(struct iommufd_ctx *ictx, struct device *dev, u32 *id)'),
  unbind: fn('iommufd_device_unbind', 'void iommufd_device_unbind(struct iommufd_device *idev)'),
  attach_resv: fn('iommufd_device_attach_reserved_iova', 'static int iommufd_device_attach_reserved_iova(struct iommufd_device *idev, struct iommufd_hwpt_paging *hwpt_paging)'),
  pasid_compat: fn('iommufd_hwpt_pasid_compat', 'static int iommufd_hwpt_pasid_compat(struct iommufd_hw_pagetable *hwpt, struct iommufd_device *idev, ioasid_t pasid)'),
  attach_device: fn('iommufd_hwpt_attach_device', 'static int iommufd_hwpt_attach_device(struct iommufd_hw_pagetable *hwpt, struct iommufd_device *idev, ioasid_t pasid)'),
  detach_device: fn('iommufd_hwpt_detach_device', 'static void iommufd_hwpt_detach_device(struct iommufd_hw_pagetable *hwpt, struct iommufd_device *idev, ioasid_t pasid)'),
  replace_device: fn('iommufd_hwpt_replace_device', 'static int iommufd_hwpt_replace_device(struct iommufd_device *idev, ioasid_t pasid, struct iommufd_hw_pagetable *hwpt, struct iommufd_hw_pagetable *old)'),
  hwpt_attach: fn('iommufd_hw_pagetable_attach', 'int iommufd_hw_pagetable_attach(struct iommufd_hw_pagetable *hwpt, struct iommufd_device *idev, ioasid_t pasid)'),
  hwpt_detach: fn('iommufd_hw_pagetable_detach', 'struct iommufd_hw_pagetable *iommufd_hw_pagetable_detach(struct iommufd_device *idev, ioasid_t pasid)'),
  do_attach: fn('iommufd_device_do_attach', 'static struct iommufd_hw_pagetable *iommufd_device_do_attach(struct iommufd_device *idev, ioasid_t pasid, struct iommufd_hw_pagetable *hwpt)'),
  replace_resv: fn('iommufd_group_do_replace_reserved_iova', 'static int iommufd_group_do_replace_reserved_iova(struct iommufd_group *igroup, struct iommufd_hwpt_paging *hwpt_paging)'),
  do_replace: fn('iommufd_device_do_replace', 'static struct iommufd_hw_pagetable *iommufd_device_do_replace(struct iommufd_device *idev, ioasid_t pasid, struct iommufd_hw_pagetable *hwpt)'),
  auto_get_domain: fn('iommufd_device_auto_get_domain', 'static struct iommufd_hw_pagetable *iommufd_device_auto_get_domain(struct iommufd_device *idev, ioasid_t pasid, struct iommufd_ioas *ioas, u32 *pt_id, attach_fn do_attach)'),
  change_pt: fn('iommufd_device_change_pt', 'static int iommufd_device_change_pt(struct iommufd_device *idev, ioasid_t pasid, u32 *pt_id, attach_fn do_attach)'),
  attach: fn('iommufd_device_attach', 'int iommufd_device_attach(struct iommufd_device *idev, ioasid_t pasid, u32 *pt_id)'),
  replace: fn('iommufd_device_replace', 'int iommufd_device_replace(struct iommufd_device *idev, ioasid_t pasid, u32 *pt_id)'),
  detach: fn('iommufd_device_detach', 'void iommufd_device_detach(struct iommufd_device *idev, ioasid_t pasid)'),
  hw_info: kfn({
    name: 'iommufd_get_hw_info',
    layer: 'iommufd',
    sig: 'int iommufd_get_hw_info(struct iommufd_ucmd *ucmd)',
    prov: { kind: 'merged', source: SRC },
    uapi: { param: 'ucmd->cmd', ctype: 'struct iommu_hw_info *' },
    handler: true,
    op: 'hw-info',
  }),
};

// ---- the IOMMU core's answers iommufd asks for ---------------------------------------------------

/** enum iommu_cap (include/linux/iommu.h), the ones iommufd asks */
export const IOMMU_CAP_CACHE_COHERENCY = 'CACHE_COHERENCY';
export const IOMMU_CAP_ENFORCE_CACHE_COHERENCY = 'ENFORCE_CACHE_COHERENCY';
export const IOMMU_CAP_DIRTY_TRACKING = 'DIRTY_TRACKING';
type IommuCap = typeof IOMMU_CAP_CACHE_COHERENCY | typeof IOMMU_CAP_ENFORCE_CACHE_COHERENCY | typeof IOMMU_CAP_DIRTY_TRACKING;


/** dev_iommu_ops(idev->dev) */
export function dev_iommu_ops(idev: IommufdDevice): IommuOps {
  const di = idev.ictx.mod.core.dev_iommu(idev.dev);
  if (!di) return idev.ictx.k.sim.oops(`${idev.dev.name}: bound without an IOMMU`);
  return di.ops;
}

/** device_iommu_capable: the driver's ops->capable. */
export function device_iommu_capable(idev: IommufdDevice, cap: IommuCap): boolean {
  return idev.ictx.mod.core.device_iommu_capable(idev.dev, cap);
}

/** iommu_group_has_isolated_msi: VT-d with interrupt remapping isolates MSIs (IRQ_DOMAIN_FLAG_ISOLATED_MSI). */
function iommu_group_has_isolated_msi(_group: IommuGroup): boolean {
  return true;
}

// ---- objects ----------------------------------------------------------------------------------

/** struct iommufd_attach: one PASID (or the RID) of a group, and which of its devices joined */
interface IommufdAttach {
  hwpt: IommufdHwPagetable | null;
  /** idev id → idev; 'reserved' is the XA_ZERO_ENTRY xa_insert leaves until xa_store */
  readonly device_array: Map<number, IommufdDevice | 'reserved'>;
  readonly alloc: KAlloc;
}

/** struct iommufd_group */
export interface IommufdGroup {
  readonly ref: { count: number };
  readonly ictx: IommufdCtx;
  readonly group: IommuGroup;
  readonly lock: Mutex;
  /** pasid → attach; 'reserved' while the first attach of that PASID is under way */
  readonly pasid_attach: Map<number, IommufdAttach | 'reserved'>;
  /** PHYS_ADDR_MAX (null): no software MSI window. VT-d's MSI window is a hardware one */
  sw_msi_start: bigint | null;
  readonly alloc: KAlloc;
}

/** struct iommufd_device */
export interface IommufdDevice extends IommufdObject {
  readonly type: 'DEVICE';
  readonly dev: Device;
  readonly igroup: IommufdGroup;
  readonly enforce_cache_coherency: boolean;
  /** idev->iopf_lock and iopf_enabled: fault-capable attachments of the device (fault.ts) */
  readonly iopf_lock: Mutex;
  iopf_enabled: number;
}

/** struct iommufd_attach_handle: the core's handle, with the idev io-pgfault hands back */
interface IommufdAttachHandle extends IommuAttachHandle {
  readonly idev: IommufdDevice;
  readonly alloc: KAlloc;
}

/** The selftest's devices: bind takes no ictx reference for them (selftest.ts registers them). */
const selftest_mock_devs = new WeakSet<Device>();

export function iommufd_selftest_register_mock_dev(dev: Device, on: boolean): void {
  if (on) selftest_mock_devs.add(dev);
  else selftest_mock_devs.delete(dev);
}

/** iommufd_selftest_is_mock_dev */
export function iommufd_selftest_is_mock_dev(dev: Device): boolean {
  return selftest_mock_devs.has(dev);
}

// ---- groups ---------------------------------------------------------------------------------

function iommufd_group_release(igroup: IommufdGroup): void {
  igroup.ictx.k.sim.call(FN.group_release, () => {
    if (igroup.pasid_attach.size) igroup.ictx.k.sim.oops('iommufd_group_release: still attached'); // WARN_ON
    const ictx = igroup.ictx;
    // xa_cmpxchg(&ictx->groups, id, igroup, NULL): only if it is still ours
    if (ictx.groups.get(igroup.group.id) === igroup) ictx.groups.delete(igroup.group.id);
    kfree(ictx.k, igroup.alloc);
  });
}

function iommufd_put_group(igroup: IommufdGroup): void {
  if (--igroup.ref.count === 0) iommufd_group_release(igroup);
}

/** iommufd_get_group: the ictx's iommufd_group for the device's IOMMU group, shared by its devices. */
function iommufd_get_group(ictx: IommufdCtx, dev: Device): IommufdGroup | ErrPtr {
  const k = ictx.k;
  return k.sim.call(FN.get_group, () => {
    const group = ictx.mod.core.iommu_group_get(dev);
    if (!group) return ERR_PTR(-ENODEV);
    const cur = ictx.groups.get(group.id) as IommufdGroup | undefined;
    // iommufd_group_try_get: kref_get_unless_zero
    if (cur && cur.ref.count > 0) {
      cur.ref.count++;
      return cur;
    }
    const alloc = kzalloc(k, 'struct iommufd_group');
    if (!alloc) return ERR_PTR(-ENOMEM);
    const igroup: IommufdGroup = {
      ref: { count: 1 },
      ictx,
      group,
      lock: new Mutex(k, `igroup${group.id}->lock`),
      pasid_attach: new Map(),
      sw_msi_start: null,
      alloc,
    };
    // __xa_cmpxchg(NULL → new_igroup) can allocate an xarray node
    if (k.sim.allocHook('xa_cmpxchg(ictx->groups)')) {
      iommufd_put_group(igroup);
      return ERR_PTR(-ENOMEM);
    }
    ictx.groups.set(group.id, igroup);
    return igroup;
  });
}

// ---- bind / unbind -----------------------------------------------------------------------------

export function iommufd_device_destroy(obj: IommufdObject): void {
  const idev = obj as IommufdDevice;
  obj.ictx.k.sim.call(FN.destroy, () => {
    obj.ictx.mod.core.iommu_device_release_dma_owner(idev.dev);
    iommufd_put_group(idev.igroup);
    if (!iommufd_selftest_is_mock_dev(idev.dev)) fput(idev.ictx.k, idev.ictx.file); // iommufd_ctx_put
  });
}

iommufd_register_object_ops('DEVICE', { destroy: iommufd_device_destroy });

/**
 * iommufd_device_bind: claims DMA ownership of the device (the whole RID, and its group) for the
 * ictx and makes a DEVICE object. The calling driver holds a `users` reference until
 * iommufd_device_unbind, so the device is a leaf nobody else references.
 */
export function iommufd_device_bind(ictx: IommufdCtx, dev: Device, id: { id: number }): IommufdDevice | ErrPtr {
  const k = ictx.k;
  const core = ictx.mod.core;
  return k.sim.call(FN.bind, () => {
    const di = core.dev_iommu(dev);
    // iommufd always sets IOMMU_CACHE: no way for userspace to restore coherency
    if (!di || !di.ops.enforce_cache_coherency) return ERR_PTR(-EINVAL);
    const igroup = iommufd_get_group(ictx, dev);
    if (IS_ERR(igroup)) return igroup;
    if (!iommufd_selftest_is_mock_dev(dev) && !iommu_group_has_isolated_msi(igroup.group)) {
      // allow_unsafe_interrupts is off
      iommufd_put_group(igroup);
      return ERR_PTR(-EPERM);
    }
    let rc = core.iommu_device_claim_dma_owner(dev, ictx);
    if (rc) {
      iommufd_put_group(igroup);
      return ERR_PTR(rc);
    }
    const idev = iommufd_object_alloc<IommufdDevice>(ictx, 'DEVICE', () => ({
      type: 'DEVICE' as const,
      dev,
      igroup,
      enforce_cache_coherency: di.ops.enforce_cache_coherency, // IOMMU_CAP_ENFORCE_CACHE_COHERENCY
      iopf_lock: new Mutex(k, `${dev.name}:idev->iopf_lock`),
      iopf_enabled: 0,
    }));
    if (IS_ERR(idev)) {
      rc = PTR_ERR(idev);
      core.iommu_device_release_dma_owner(dev);
      iommufd_put_group(igroup);
      return ERR_PTR(rc);
    }
    if (!iommufd_selftest_is_mock_dev(dev)) get_file(ictx.file); // iommufd_ctx_get
    // the calling driver is a user until iommufd_device_unbind
    iommufd_object_get_users(idev);
    iommufd_object_finalize(ictx, idev);
    id.id = idev.id;
    return idev;
  });
}

/** iommufd_device_unbind: destroys the DEVICE; the driver must have detached it. */
export function iommufd_device_unbind(idev: IommufdDevice): void {
  idev.ictx.k.sim.call(FN.unbind, () => iommufd_object_destroy_user(idev.ictx, idev));
}

/** iommufd_get_device (iommufd_private.h): a DEVICE by id with a short-term reference. */
export function iommufd_get_device(ucmd: IommufdUcmd, id: number): IommufdDevice | ErrPtr {
  const obj = iommufd_get_object(ucmd.ictx, id, 'DEVICE');
  return IS_ERR(obj) ? obj : (obj as IommufdDevice);
}

// ---- attach helpers ------------------------------------------------------------------------------

const isAttach = (a: IommufdAttach | 'reserved' | undefined): a is IommufdAttach => a !== undefined && a !== 'reserved';

/** iommufd_group_first_attach: xa_load sees a reserved slot as empty */
function iommufd_group_first_attach(igroup: IommufdGroup, pasid: number): boolean {
  return !isAttach(igroup.pasid_attach.get(pasid));
}

function iommufd_group_device_num(igroup: IommufdGroup, pasid: number): number {
  const attach = igroup.pasid_attach.get(pasid);
  if (!isAttach(attach)) return 0;
  let n = 0;
  for (const v of attach.device_array.values()) if (v !== 'reserved') n++;
  return n;
}

/** iommufd_group_setup_msi: only a software MSI window (ARM) needs pages installed; VT-d has none. */
function iommufd_group_setup_msi(igroup: IommufdGroup, _hwpt_paging: IommufdHwptPaging): number {
  void igroup.sw_msi_start;
  return 0;
}

function iommufd_device_attach_reserved_iova(idev: IommufdDevice, hwpt_paging: IommufdHwptPaging): number {
  return idev.ictx.k.sim.call(FN.attach_resv, () => {
    const igroup = idev.igroup;
    const sw = { start: igroup.sw_msi_start };
    let rc = iopt_table_enforce_dev_resv_regions(hwpt_paging.ioas.iopt, idev.ictx.mod.core, idev.dev, sw);
    if (rc) return rc;
    igroup.sw_msi_start = sw.start;
    if (iommufd_group_first_attach(igroup, IOMMU_NO_PASID)) {
      rc = iommufd_group_setup_msi(igroup, hwpt_paging);
      if (rc) {
        iopt_remove_reserved_iova(hwpt_paging.ioas.iopt, idev.dev);
        return rc;
      }
    }
    return 0;
  });
}

function iommufd_device_is_attached(idev: IommufdDevice, pasid: number): boolean {
  const attach = idev.igroup.pasid_attach.get(pasid);
  return isAttach(attach) && attach.device_array.get(idev.id) === idev;
}

/**
 * iommufd_hwpt_pasid_compat: a non-compat HWPT may not go on the RID while PASIDs are attached,
 * and a PASID needs a PASID-capable device (max_pasids > 0) and both its HWPT and the RID's to be
 * compat (IOMMU_HWPT_ALLOC_PASID).
 */
function iommufd_hwpt_pasid_compat(hwpt: IommufdHwPagetable, idev: IommufdDevice, pasid: number): number {
  return idev.ictx.k.sim.call(FN.pasid_compat, () => {
    const igroup = idev.igroup;
    if (pasid === IOMMU_NO_PASID) {
      const others = [...igroup.pasid_attach.keys()].some((p) => p !== IOMMU_NO_PASID);
      if (!hwpt.pasid_compat && others) return -EINVAL;
    } else {
      // A device without the PASID capability (max_pasids 0) takes no PASID attach: the selftest
      // (iommufd_device_pasid, no_pasid) expects EINVAL. 6.15's core skips such devices in its
      // range check, and we have not confirmed which layer refuses, so the check sits here.
      if (!idev.ictx.mod.core.dev_iommu(idev.dev)?.max_pasids) return -EINVAL;
      if (!hwpt.pasid_compat) return -EINVAL;
      const attach = igroup.pasid_attach.get(IOMMU_NO_PASID);
      if (isAttach(attach) && attach.hwpt && !attach.hwpt.pasid_compat) return -EINVAL;
    }
    return 0;
  });
}

function new_handle(idev: IommufdDevice): IommufdAttachHandle | null {
  const alloc = kzalloc(idev.ictx.k, 'struct iommufd_attach_handle');
  return alloc ? { domain: null, owner: idev, idev, alloc } : null;
}

/**
 * The group (RID) or the PASID takes the HWPT's domain, with a handle naming the idev (io-pgfault
 * hands it back with each fault group). A fault-capable HWPT turns the device's IOPF on first
 * (6.15: here; 6.16 moved it into the drivers).
 */
function iommufd_hwpt_attach_device(hwpt: IommufdHwPagetable, idev: IommufdDevice, pasid: number): number {
  const core = idev.ictx.mod.core;
  return idev.ictx.k.sim.call(FN.attach_device, () => {
    let rc = iommufd_hwpt_pasid_compat(hwpt, idev, pasid);
    if (rc) return rc;
    const handle = new_handle(idev);
    if (!handle) return -ENOMEM;
    if (hwpt.fault) {
      rc = iommufd_fault_iopf_enable(idev);
      if (rc) {
        kfree(idev.ictx.k, handle.alloc);
        return rc;
      }
    }
    rc =
      pasid === IOMMU_NO_PASID
        ? core.iommu_attach_group_handle(hwpt.domain!, idev.igroup.group, handle)
        : core.iommu_attach_device_pasid(hwpt.domain!, idev.dev, pasid, handle);
    if (rc) {
      if (hwpt.fault) iommufd_fault_iopf_disable(idev);
      kfree(idev.ictx.k, handle.alloc);
    }
    return rc;
  });
}

function iommufd_device_get_attach_handle(idev: IommufdDevice, pasid: number): IommufdAttachHandle | null {
  return idev.ictx.mod.core.iommu_attach_handle_get(idev.igroup.group, pasid) as IommufdAttachHandle | null;
}

function iommufd_hwpt_detach_device(hwpt: IommufdHwPagetable, idev: IommufdDevice, pasid: number): void {
  const core = idev.ictx.mod.core;
  idev.ictx.k.sim.call(FN.detach_device, () => {
    const handle = iommufd_device_get_attach_handle(idev, pasid);
    // iommu_detach_group_handle: the shared core's iommu_detach_group also drops the RID handle
    if (pasid === IOMMU_NO_PASID) core.iommu_detach_group_handle(hwpt.domain!, idev.igroup.group);
    else core.iommu_detach_device_pasid(hwpt.domain!, idev.dev, pasid);
    // the groups of this attachment nobody answered: INVALID, so the device stops waiting
    if (hwpt.fault) {
      iommufd_auto_response_faults(hwpt, handle);
      iommufd_fault_iopf_disable(idev);
    }
    kfree(idev.ictx.k, handle?.alloc);
  });
}

function iommufd_hwpt_replace_device(idev: IommufdDevice, pasid: number, hwpt: IommufdHwPagetable, old: IommufdHwPagetable): number {
  const core = idev.ictx.mod.core;
  const group = idev.igroup.group;
  return idev.ictx.k.sim.call(FN.replace_device, () => {
    let rc = iommufd_hwpt_pasid_compat(hwpt, idev, pasid);
    if (rc) return rc;
    const old_handle = iommufd_device_get_attach_handle(idev, pasid);
    const handle = new_handle(idev);
    if (!handle) return -ENOMEM;
    const enable = hwpt.fault !== null && old.fault === null;
    if (enable) {
      rc = iommufd_fault_iopf_enable(idev);
      if (rc) {
        kfree(idev.ictx.k, handle.alloc);
        return rc;
      }
    }
    rc =
      pasid === IOMMU_NO_PASID
        ? core.iommu_replace_group_handle(group, hwpt.domain!, handle)
        : core.iommu_replace_device_pasid(hwpt.domain!, idev.dev, pasid, handle);
    if (rc) {
      if (enable) iommufd_fault_iopf_disable(idev);
      kfree(idev.ictx.k, handle.alloc);
      return rc;
    }
    if (old.fault) {
      // 6.15 passes the new HWPT: its queue is searched for the old handle's groups
      iommufd_auto_response_faults(hwpt, old_handle);
      if (!hwpt.fault) iommufd_fault_iopf_disable(idev);
    }
    kfree(idev.ictx.k, old_handle?.alloc);
    return 0;
  });
}

/**
 * iommufd_hw_pagetable_attach: under igroup->lock, the device joins the group's attachment at
 * `pasid`: the group already on another HWPT → EINVAL; the device's reserved regions go into the
 * IOAS (RID only); the first device attaches the group. Each device holds a `users` on the HWPT.
 */
export function iommufd_hw_pagetable_attach(hwpt: IommufdHwPagetable, idev: IommufdDevice, pasid: number): number {
  const k = idev.ictx.k;
  return k.sim.call(FN.hwpt_attach, () => {
    const hwpt_paging = find_hwpt_paging(hwpt);
    const attach_resv = hwpt_paging !== null && pasid === IOMMU_NO_PASID;
    const igroup = idev.igroup;
    mutex_lock(igroup.lock);
    const first = iommufd_group_first_attach(igroup, pasid);
    let rc = 0;
    let attach: IommufdAttach | null = null;
    const unwind = (stage: 'unresv' | 'devid' | 'attach' | 'pasid' | 'unlock'): number => {
      const order = ['unresv', 'devid', 'attach', 'pasid', 'unlock'];
      const from = order.indexOf(stage);
      if (from <= 0 && attach_resv) iopt_remove_reserved_iova(hwpt_paging!.ioas.iopt, idev.dev);
      if (from <= 1) attach!.device_array.delete(idev.id); // xa_release
      if (from <= 2 && first) kfree(k, attach!.alloc);
      if (from <= 3 && first) igroup.pasid_attach.delete(pasid); // xa_release
      mutex_unlock(igroup.lock);
      return rc;
    };
    // xa_cmpxchg(pasid_attach, pasid, NULL, XA_ZERO_ENTRY): reserve the slot of a first attach
    if (first) {
      if (k.sim.allocHook('xa_cmpxchg(igroup->pasid_attach)')) return ((rc = -ENOMEM), unwind('unlock'));
      igroup.pasid_attach.set(pasid, 'reserved');
      const alloc = kzalloc(k, 'struct iommufd_attach');
      if (!alloc) return ((rc = -ENOMEM), unwind('pasid'));
      attach = { hwpt: null, device_array: new Map(), alloc };
    } else {
      attach = igroup.pasid_attach.get(pasid) as IommufdAttach;
    }
    const old_hwpt = attach.hwpt;
    // xa_insert(device_array, idev id, XA_ZERO_ENTRY)
    if (attach.device_array.has(idev.id)) {
      rc = -EBUSY;
      if (!old_hwpt) k.sim.oops('iommufd_hw_pagetable_attach: busy slot in an empty attach'); // WARN_ON
      return unwind('attach');
    }
    if (k.sim.allocHook('xa_insert(attach->device_array)')) return ((rc = -ENOMEM), unwind('attach'));
    attach.device_array.set(idev.id, 'reserved');
    if (old_hwpt && old_hwpt !== hwpt) return ((rc = -EINVAL), unwind('devid'));
    if (attach_resv) {
      rc = iommufd_device_attach_reserved_iova(idev, hwpt_paging!);
      if (rc) return unwind('devid');
    }
    // only the group's first device attaches; the others follow it (each still reserves its regions)
    if (first) {
      rc = iommufd_hwpt_attach_device(hwpt, idev, pasid);
      if (rc) return unwind('unresv');
      attach.hwpt = hwpt;
      igroup.pasid_attach.set(pasid, attach);
    }
    iommufd_object_get_users(hwpt);
    attach.device_array.set(idev.id, idev);
    mutex_unlock(igroup.lock);
    return 0;
  });
}

/** iommufd_hw_pagetable_detach: the caller puts the returned HWPT. NULL if nothing was attached. */
export function iommufd_hw_pagetable_detach(idev: IommufdDevice, pasid: number): IommufdHwPagetable | null {
  const k = idev.ictx.k;
  return k.sim.call(FN.hwpt_detach, () => {
    const igroup = idev.igroup;
    mutex_lock(igroup.lock);
    const attach = igroup.pasid_attach.get(pasid);
    if (!isAttach(attach)) {
      mutex_unlock(igroup.lock);
      return null;
    }
    const hwpt = attach.hwpt!;
    const hwpt_paging = find_hwpt_paging(hwpt);
    attach.device_array.delete(idev.id);
    if (attach.device_array.size === 0) {
      iommufd_hwpt_detach_device(hwpt, idev, pasid);
      igroup.pasid_attach.delete(pasid);
      kfree(k, attach.alloc);
    }
    if (hwpt_paging && pasid === IOMMU_NO_PASID) iopt_remove_reserved_iova(hwpt_paging.ioas.iopt, idev.dev);
    mutex_unlock(igroup.lock);
    return hwpt;
  });
}

/** What attach_fn returns: the HWPT the caller must put afterwards, null, or an error. */
type AttachFn = (idev: IommufdDevice, pasid: number, hwpt: IommufdHwPagetable) => IommufdHwPagetable | null | ErrPtr;

const iommufd_device_do_attach: AttachFn = (idev, pasid, hwpt) =>
  idev.ictx.k.sim.call(FN.do_attach, () => {
    const rc = iommufd_hw_pagetable_attach(hwpt, idev, pasid);
    return rc ? ERR_PTR(rc) : null;
  });

function iommufd_group_remove_reserved_iova(igroup: IommufdGroup, hwpt_paging: IommufdHwptPaging): void {
  const attach = igroup.pasid_attach.get(IOMMU_NO_PASID);
  if (!isAttach(attach)) return;
  for (const cur of attach.device_array.values()) if (cur !== 'reserved') iopt_remove_reserved_iova(hwpt_paging.ioas.iopt, cur.dev);
}

/** Moving to another IOAS: every device of the group reserves its regions there first. */
function iommufd_group_do_replace_reserved_iova(igroup: IommufdGroup, hwpt_paging: IommufdHwptPaging): number {
  return igroup.ictx.k.sim.call(FN.replace_resv, () => {
    const attach = igroup.pasid_attach.get(IOMMU_NO_PASID) as IommufdAttach;
    const old_hwpt_paging = find_hwpt_paging(attach.hwpt);
    let rc = 0;
    if (!old_hwpt_paging || hwpt_paging.ioas !== old_hwpt_paging.ioas) {
      for (const cur of attach.device_array.values()) {
        if (cur === 'reserved') continue;
        rc = iopt_table_enforce_dev_resv_regions(hwpt_paging.ioas.iopt, igroup.ictx.mod.core, cur.dev, null);
        if (rc) break;
      }
    }
    if (!rc) rc = iommufd_group_setup_msi(igroup, hwpt_paging);
    if (rc) iommufd_group_remove_reserved_iova(igroup, hwpt_paging);
    return rc;
  });
}

/**
 * iommufd_device_do_replace: the group moves to `hwpt` without passing through blocking; the
 * `users` every device held on the old HWPT move to the new one, keeping one for the caller to
 * put (which frees an auto domain left empty).
 */
const iommufd_device_do_replace: AttachFn = (idev, pasid, hwpt) =>
  idev.ictx.k.sim.call(FN.do_replace, () => {
    const hwpt_paging = find_hwpt_paging(hwpt);
    const attach_resv = hwpt_paging !== null && pasid === IOMMU_NO_PASID;
    const igroup = idev.igroup;
    mutex_lock(igroup.lock);
    const fail = (rc: number): ErrPtr => {
      mutex_unlock(igroup.lock);
      return ERR_PTR(rc);
    };
    const attach = igroup.pasid_attach.get(pasid);
    if (!isAttach(attach)) return fail(-EINVAL);
    const old_hwpt = attach.hwpt!;
    if (!iommufd_device_is_attached(idev, pasid)) return fail(-EINVAL);
    if (hwpt === old_hwpt) {
      mutex_unlock(igroup.lock);
      return null;
    }
    let rc = 0;
    if (attach_resv) {
      rc = iommufd_group_do_replace_reserved_iova(igroup, hwpt_paging!);
      if (rc) return fail(rc);
    }
    rc = iommufd_hwpt_replace_device(idev, pasid, hwpt, old_hwpt);
    if (rc) {
      if (attach_resv) iommufd_group_remove_reserved_iova(igroup, hwpt_paging!);
      return fail(rc);
    }
    const old_hwpt_paging = find_hwpt_paging(old_hwpt);
    if (old_hwpt_paging && pasid === IOMMU_NO_PASID && (!hwpt_paging || hwpt_paging.ioas !== old_hwpt_paging.ioas)) {
      iommufd_group_remove_reserved_iova(igroup, old_hwpt_paging);
    }
    attach.hwpt = hwpt;
    const num_devices = iommufd_group_device_num(igroup, pasid);
    // refcount_add(num_devices, new); refcount_sub(num_devices − 1, old): the caller puts the last
    hwpt.users += num_devices;
    if (num_devices > 1) {
      old_hwpt.users -= num_devices - 1;
      if (old_hwpt.users <= 0) idev.ictx.k.sim.oops('iommufd_device_do_replace: old HWPT refcount hit zero'); // WARN_ON
    }
    mutex_unlock(igroup.lock);
    return old_hwpt;
  });

/**
 * iommufd_device_auto_get_domain: attach to an IOAS. Any existing auto domain of the IOAS that
 * accepts the device will do (EINVAL means "incompatible, try the next"); otherwise a new paging
 * HWPT is made (attached immediately on the attach path) and marked auto_domain.
 */
function iommufd_device_auto_get_domain(idev: IommufdDevice, pasid: number, ioas: IommufdIoas, pt_id: { id: number }, do_attach: AttachFn): IommufdHwPagetable | null | ErrPtr {
  const ictx = idev.ictx;
  return ictx.k.sim.call(FN.auto_get_domain, () => {
    const immediate_attach = do_attach === iommufd_device_do_attach;
    mutex_lock(ioas.mutex);
    for (const obj of [...ioas.hwpt_list]) {
      const hwpt_paging = obj as IommufdHwptPaging;
      if (!hwpt_paging.auto_domain) continue;
      if (!iommufd_lock_obj(hwpt_paging)) continue;
      const destroy_hwpt = do_attach(idev, pasid, hwpt_paging);
      iommufd_put_object(ictx, hwpt_paging);
      if (IS_ERR(destroy_hwpt)) {
        if (PTR_ERR(destroy_hwpt) === -EINVAL) continue;
        mutex_unlock(ioas.mutex);
        return destroy_hwpt;
      }
      pt_id.id = hwpt_paging.id;
      mutex_unlock(ioas.mutex);
      return destroy_hwpt;
    }
    const hwpt_paging = iommufd_hwpt_paging_alloc(ictx, ioas, idev, pasid, 0, immediate_attach, null);
    if (IS_ERR(hwpt_paging)) {
      mutex_unlock(ioas.mutex);
      return hwpt_paging;
    }
    let destroy_hwpt: IommufdHwPagetable | null | ErrPtr = null;
    if (!immediate_attach) {
      destroy_hwpt = do_attach(idev, pasid, hwpt_paging);
      if (IS_ERR(destroy_hwpt)) {
        iommufd_object_abort_and_destroy(ictx, hwpt_paging);
        mutex_unlock(ioas.mutex);
        return destroy_hwpt;
      }
    }
    hwpt_paging.auto_domain = true;
    pt_id.id = hwpt_paging.id;
    iommufd_object_finalize(ictx, hwpt_paging);
    mutex_unlock(ioas.mutex);
    return destroy_hwpt;
  });
}

/** iommufd_device_change_pt: pt_id names an HWPT (attach it) or an IOAS (auto domain). */
function iommufd_device_change_pt(idev: IommufdDevice, pasid: number, pt_id: { id: number }, do_attach: AttachFn): number {
  const ictx = idev.ictx;
  return ictx.k.sim.call(FN.change_pt, () => {
    const pt_obj = iommufd_get_object(ictx, pt_id.id, 'ANY');
    if (IS_ERR(pt_obj)) return PTR_ERR(pt_obj);
    let destroy_hwpt: IommufdHwPagetable | null | ErrPtr;
    switch (pt_obj.type) {
      case 'HWPT_NESTED':
      case 'HWPT_PAGING':
        destroy_hwpt = do_attach(idev, pasid, pt_obj as IommufdHwPagetable);
        break;
      case 'IOAS':
        destroy_hwpt = iommufd_device_auto_get_domain(idev, pasid, pt_obj as IommufdIoas, pt_id, do_attach);
        break;
      default:
        destroy_hwpt = ERR_PTR(-EINVAL);
    }
    iommufd_put_object(ictx, pt_obj);
    if (IS_ERR(destroy_hwpt)) return PTR_ERR(destroy_hwpt);
    // after everything is unlocked: destroying an auto domain takes ioas->mutex
    if (destroy_hwpt) iommufd_hw_pagetable_put(ictx, destroy_hwpt);
    return 0;
  });
}

/**
 * iommufd_device_attach: the device's RID (pasid = IOMMU_NO_PASID) or `pasid` to pt_id (an IOAS,
 * HWPT_PAGING or HWPT_NESTED). pt_id returns the HWPT used. Undone by iommufd_device_detach.
 */
export function iommufd_device_attach(idev: IommufdDevice, pasid: number, pt_id: { id: number }): number {
  return idev.ictx.k.sim.call(FN.attach, () => {
    const rc = iommufd_device_change_pt(idev, pasid, pt_id, iommufd_device_do_attach);
    if (rc) return rc;
    // pairs with iommufd_device_detach: unbinding an attached device is a caller bug
    iommufd_object_get_users(idev);
    return 0;
  });
}

/** iommufd_device_replace: as detach + attach, but without a blocked window; no change on failure. */
export function iommufd_device_replace(idev: IommufdDevice, pasid: number, pt_id: { id: number }): number {
  return idev.ictx.k.sim.call(FN.replace, () => iommufd_device_change_pt(idev, pasid, pt_id, iommufd_device_do_replace));
}

/** iommufd_device_detach: back to blocked DMA; a PASID that was not attached is a no-op. */
export function iommufd_device_detach(idev: IommufdDevice, pasid: number): void {
  idev.ictx.k.sim.call(FN.detach, () => {
    const hwpt = iommufd_hw_pagetable_detach(idev, pasid);
    if (!hwpt) return;
    iommufd_hw_pagetable_put(idev.ictx, hwpt);
    iommufd_object_put_users(idev);
  });
}

// ---- IOMMU_GET_HW_INFO ------------------------------------------------------------------------------

/**
 * IOMMU_GET_HW_INFO: the driver's info struct (Intel: iommu_hw_info_vtd from CAP/ECAP), copied
 * min(data_len, kernel size) bytes with the rest of the user buffer zeroed; data_len returns the
 * kernel's size, out_data_type its type, plus capabilities and the PASID width.
 */
export function iommufd_get_hw_info(ucmd: IommufdUcmd): number {
  const { ictx, cmd } = ucmd;
  const k = ictx.k;
  return k.sim.call(FN.hw_info, () => {
    const reserved = Array.from(cmd.__reserved as ArrayLike<number>);
    if (u32(cmd, 'flags') || reserved.some((b) => b !== 0)) return -EOPNOTSUPP;
    const idev = iommufd_get_device(ucmd, u32(cmd, 'dev_id'));
    if (IS_ERR(idev)) return PTR_ERR(idev);
    const user_ptr = Number(u64(cmd, 'data_uptr'));
    const rc = (() => {
      const ops = dev_iommu_ops(idev);
      let data: Uint8Array = new Uint8Array(0);
      if (ops.hw_info) {
        const info = ops.hw_info(idev.dev);
        if (IS_ERR(info)) return PTR_ERR(info);
        // a driver with hw_info must have its own type; kmalloc'd in the kernel (a fail-nth site)
        if (info.type === IOMMU_HW_INFO_TYPE_NONE) return -ENODEV;
        if (k.sim.allocHook('hw_info data')) return -ENOMEM;
        data = info.data;
        cmd.out_data_type = info.type;
      } else {
        cmd.out_data_type = IOMMU_HW_INFO_TYPE_NONE;
      }
      const user_len = u32(cmd, 'data_len');
      const copy_len = Math.min(user_len, data.length);
      if (copy_to_user(k, uptr(user_ptr), data, copy_len)) return -EFAULT;
      // clear_user of the tail the kernel has no data for (modelled as a copy of zeroes)
      if (copy_len < user_len && copy_to_user(k, uptr(user_ptr + copy_len), new Uint8Array(user_len - copy_len), user_len - copy_len)) return -EFAULT;
      // the kernel's length, so userspace learns what it could have asked for
      cmd.data_len = data.length;
      let caps = 0n;
      if (device_iommu_capable(idev, IOMMU_CAP_DIRTY_TRACKING)) caps |= BigInt(IOMMU_HW_CAP_DIRTY_TRACKING);
      cmd.out_max_pasid_log2 = 0;
      const max_pasids = ictx.mod.core.dev_iommu(idev.dev)!.max_pasids;
      // the PCI PASID control register's EXEC/PRIV bits are not modelled: both read as clear
      if (max_pasids) cmd.out_max_pasid_log2 = Math.floor(Math.log2(max_pasids));
      cmd.out_capabilities = caps;
      return iommufd_ucmd_respond(ucmd, sizeOf(ucmd.decl));
    })();
    iommufd_put_object(ictx, idev);
    return rc;
  });
}
