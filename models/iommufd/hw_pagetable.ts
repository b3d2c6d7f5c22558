import { kfn, type KFn } from '../../sim/index.ts';
import { EFAULT, EINVAL, EOPNOTSUPP, ERR_PTR, IS_ERR, PTR_ERR, type ErrPtr } from '../kernel/errno.ts';
import { mutex_lock, mutex_unlock } from '../kernel/locks.ts';
import { uptr } from '../kernel/mm.ts';
import {
  IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_ALLOC_PASID,
  IOMMU_HWPT_DATA_NONE,
  IOMMU_HWPT_FAULT_ID_VALID,
  sizeOf,
} from '../kernel/uapi/index.ts';
import { IOMMU_NO_PASID, type IommuDomain, type IommuUserData, type IommuUserDataArray } from '../iommu/types.ts';
import {
  IOMMU_CAP_DIRTY_TRACKING,
  device_iommu_capable,
  dev_iommu_ops,
  iommufd_get_device,
  iommufd_hw_pagetable_attach,
  iommufd_hw_pagetable_detach,
  type IommufdDevice,
} from './device.ts';
import { iommufd_fault_iopf_handler, iommufd_get_fault } from './fault.ts';
import { iopt_table_add_domain, iopt_table_remove_domain } from './io_pagetable.ts';
import type { IommufdIoas } from './ioas.ts';
import {
  iommufd_get_object,
  iommufd_object_abort_and_destroy,
  iommufd_object_alloc,
  iommufd_object_finalize,
  iommufd_object_put_and_try_destroy,
  iommufd_object_put_users,
  iommufd_object_get_users,
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
 * HWPT objects (drivers/iommu/iommufd/hw_pagetable.c @ v6.15): an iommu_domain with an id.
 *  - HWPT_PAGING: a paging domain filled from its IOAS (explicit: IOMMU_HWPT_ALLOC with pt_id =
 *    an IOAS; or an auto domain made by attaching a device to an IOAS, device.ts);
 *  - HWPT_NESTED: a driver stage-1 domain over a NEST_PARENT paging HWPT. The core never reads
 *    the driver's data: it passes {type, uptr, len} and the driver copies its own struct.
 * Read against torvalds/linux hw_pagetable.c as of v6.15 (the PASID flag plumbing and
 * `pasid_compat`; iommufd_hwpt_paging_alloc takes the pasid for immediate attach).
 */
const SRC = 'drivers/iommu/iommufd/hw_pagetable.c @ v6.15';
const fn = (name: string, sig: string): KFn => kfn({ name, layer: 'iommufd', sig, prov: { kind: 'merged', source: SRC } });

const FN = {
  paging_destroy: fn('iommufd_hwpt_paging_destroy', 'void iommufd_hwpt_paging_destroy(struct iommufd_object *obj)'),
  paging_abort: fn('iommufd_hwpt_paging_abort', 'void iommufd_hwpt_paging_abort(struct iommufd_object *obj)'),
  nested_destroy: fn('iommufd_hwpt_nested_destroy', 'void iommufd_hwpt_nested_destroy(struct iommufd_object *obj)'),
  enforce_cc: fn('iommufd_hwpt_paging_enforce_cc', 'static int iommufd_hwpt_paging_enforce_cc(struct iommufd_hwpt_paging *hwpt_paging)'),
  paging_alloc: fn(
    'iommufd_hwpt_paging_alloc',
    'struct iommufd_hwpt_paging *iommufd_hwpt_paging_alloc(struct iommufd_ctx *ictx, struct iommufd_ioas *ioas, struct iommufd_device *idev, ioasid_t pasid, u32 flags, bool immediate_attach, const struct iommu_user_data *user_data)',
  ),
  nested_alloc: fn(
    'iommufd_hwpt_nested_alloc',
    'static struct iommufd_hwpt_nested *iommufd_hwpt_nested_alloc(struct iommufd_ctx *ictx, struct iommufd_hwpt_paging *parent, struct iommufd_device *idev, u32 flags, const struct iommu_user_data *user_data)',
  ),
  invalidate: kfn({
    name: 'iommufd_hwpt_invalidate',
    layer: 'iommufd',
    sig: 'int iommufd_hwpt_invalidate(struct iommufd_ucmd *ucmd)',
    prov: { kind: 'merged', source: SRC },
    uapi: { param: 'ucmd->cmd', ctype: 'struct iommu_hwpt_invalidate *' },
    handler: true,
    op: 'invalidate',
  }),
  hwpt_alloc: kfn({
    name: 'iommufd_hwpt_alloc',
    layer: 'iommufd',
    sig: 'int iommufd_hwpt_alloc(struct iommufd_ucmd *ucmd)',
    prov: { kind: 'merged', source: SRC },
    uapi: { param: 'ucmd->cmd', ctype: 'struct iommu_hwpt_alloc *' },
    handler: true,
    op: 'alloc',
  }),
};

/** struct iommufd_hw_pagetable: what both kinds share */
export interface IommufdHwPagetable extends IommufdObject {
  readonly type: 'HWPT_PAGING' | 'HWPT_NESTED';
  /** NULL until the driver returned one (and again if it failed) */
  domain: IommuDomain | null;
  /** the FAULT object (fault.ts) its domain's page requests go to; holds a users reference on it */
  fault: IommufdObject | null;
  /** IOMMU_HWPT_ALLOC_PASID: may be attached to a PASID, and the RID's HWPT must be too */
  pasid_compat: boolean;
}

/** struct iommufd_hwpt_paging */
export interface IommufdHwptPaging extends IommufdHwPagetable {
  readonly type: 'HWPT_PAGING';
  readonly ioas: IommufdIoas;
  /** made by iommufd_device_auto_get_domain: attach to an IOAS may pick it, the user never */
  auto_domain: boolean;
  enforce_cache_coherency: boolean;
  readonly nest_parent: boolean;
  /** list_empty(&hwpt_item) == !on_hwpt_list: on ioas->hwpt_list once added to the IOAS */
  on_hwpt_list: boolean;
}

/** struct iommufd_hwpt_nested (the vIOMMU form is not modelled) */
export interface IommufdHwptNested extends IommufdHwPagetable {
  readonly type: 'HWPT_NESTED';
  readonly parent: IommufdHwptPaging;
}

/** find_hwpt_paging (iommufd_private.h): the paging HWPT whose IOAS a HWPT translates through */
export function find_hwpt_paging(hwpt: IommufdHwPagetable | null): IommufdHwptPaging | null {
  if (!hwpt) return null;
  return hwpt.type === 'HWPT_PAGING' ? (hwpt as IommufdHwptPaging) : (hwpt as IommufdHwptNested).parent;
}

/**
 * iommufd_hw_pagetable_put (iommufd_private.h): drops a reference on an HWPT; an auto domain is
 * destroyed when its last device leaves (the ioas->mutex must not be held: destroy takes it).
 */
export function iommufd_hw_pagetable_put(ictx: IommufdCtx, hwpt: IommufdHwPagetable): void {
  if (hwpt.type === 'HWPT_PAGING' && (hwpt as IommufdHwptPaging).auto_domain) {
    iommufd_object_put_and_try_destroy(ictx, hwpt);
    return;
  }
  iommufd_object_put_users(hwpt);
}

function __iommufd_hwpt_destroy(hwpt: IommufdHwPagetable): void {
  if (hwpt.domain) hwpt.ictx.mod.core.iommu_domain_free(hwpt.domain);
  if (hwpt.fault) iommufd_object_put_users(hwpt.fault);
}

export function iommufd_hwpt_paging_destroy(obj: IommufdObject): void {
  const hwpt_paging = obj as IommufdHwptPaging;
  obj.ictx.k.sim.call(FN.paging_destroy, () => {
    if (hwpt_paging.on_hwpt_list) {
      mutex_lock(hwpt_paging.ioas.mutex);
      list_del(hwpt_paging);
      mutex_unlock(hwpt_paging.ioas.mutex);
      iopt_table_remove_domain(hwpt_paging.ioas.iopt, hwpt_paging.domain!);
    }
    __iommufd_hwpt_destroy(hwpt_paging);
    // last: everything above uses the IOAS
    iommufd_object_put_users(hwpt_paging.ioas);
  });
}

/** Abort runs with ioas->mutex held (the caller holds it until finalize), so it does not take it. */
export function iommufd_hwpt_paging_abort(obj: IommufdObject): void {
  const hwpt_paging = obj as IommufdHwptPaging;
  obj.ictx.k.sim.call(FN.paging_abort, () => {
    if (hwpt_paging.on_hwpt_list) {
      list_del(hwpt_paging);
      iopt_table_remove_domain(hwpt_paging.ioas.iopt, hwpt_paging.domain!);
    }
    iommufd_hwpt_paging_destroy(obj);
  });
}

export function iommufd_hwpt_nested_destroy(obj: IommufdObject): void {
  const hwpt_nested = obj as IommufdHwptNested;
  obj.ictx.k.sim.call(FN.nested_destroy, () => {
    __iommufd_hwpt_destroy(hwpt_nested);
    iommufd_object_put_users(hwpt_nested.parent);
  });
}

iommufd_register_object_ops('HWPT_PAGING', { destroy: iommufd_hwpt_paging_destroy, abort: iommufd_hwpt_paging_abort });
iommufd_register_object_ops('HWPT_NESTED', { destroy: iommufd_hwpt_nested_destroy, abort: iommufd_hwpt_nested_destroy });

function list_del(hwpt_paging: IommufdHwptPaging): void {
  const list = hwpt_paging.ioas.hwpt_list;
  list.splice(list.indexOf(hwpt_paging), 1);
  hwpt_paging.on_hwpt_list = false;
}

/**
 * The coherency mode is fixed before any map (some IOMMUs have a per-PTE snoop bit). The shared
 * DomainOps has no enforce_cache_coherency yet: the driver's declared ability stands for it
 * (Intel: force_snooping, which every VT-d with SC/snoop control grants).
 */
function iommufd_hwpt_paging_enforce_cc(hwpt_paging: IommufdHwptPaging): number {
  return hwpt_paging.ictx.k.sim.call(FN.enforce_cc, () => {
    if (hwpt_paging.enforce_cache_coherency) return 0;
    hwpt_paging.enforce_cache_coherency = hwpt_paging.domain!.owner.enforce_cache_coherency;
    return hwpt_paging.enforce_cache_coherency ? 0 : -EINVAL;
  });
}

const PAGING_VALID_FLAGS = IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_DIRTY_TRACKING | IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_PASID;

/**
 * iommufd_hwpt_paging_alloc: a paging domain linked to `ioas` and filled from it. With
 * immediate_attach (the auto-domain path) the device is attached before the fill. The caller
 * holds ioas->mutex until finalize or abort.
 */
export function iommufd_hwpt_paging_alloc(
  ictx: IommufdCtx,
  ioas: IommufdIoas,
  idev: IommufdDevice,
  pasid: number,
  flags: number,
  immediate_attach: boolean,
  user_data: IommuUserData | null,
): IommufdHwptPaging | ErrPtr {
  const k = ictx.k;
  return k.sim.call(FN.paging_alloc, () => {
    const ops = dev_iommu_ops(idev);
    // (flags || user_data) && !ops->domain_alloc_paging_flags: every modelled driver has it
    if (flags & ~PAGING_VALID_FLAGS) return ERR_PTR(-EOPNOTSUPP);
    if (flags & IOMMU_HWPT_ALLOC_DIRTY_TRACKING && !device_iommu_capable(idev, IOMMU_CAP_DIRTY_TRACKING)) return ERR_PTR(-EOPNOTSUPP);
    if (flags & IOMMU_HWPT_FAULT_ID_VALID && flags & IOMMU_HWPT_ALLOC_NEST_PARENT) return ERR_PTR(-EOPNOTSUPP);

    const hwpt_paging = iommufd_object_alloc<IommufdHwptPaging>(ictx, 'HWPT_PAGING', () => ({
      type: 'HWPT_PAGING' as const,
      domain: null,
      fault: null,
      pasid_compat: (flags & IOMMU_HWPT_ALLOC_PASID) !== 0,
      ioas,
      auto_domain: false,
      enforce_cache_coherency: false,
      nest_parent: (flags & IOMMU_HWPT_ALLOC_NEST_PARENT) !== 0,
      on_hwpt_list: false,
    }));
    if (IS_ERR(hwpt_paging)) return hwpt_paging;
    // pairs with iommufd_hwpt_paging_destroy
    iommufd_object_get_users(ioas);

    const out_abort = (rc: number): ErrPtr => {
      iommufd_object_abort_and_destroy(ictx, hwpt_paging);
      return ERR_PTR(rc);
    };
    const domain = ops.domain_alloc_paging_flags(idev.dev, flags & ~IOMMU_HWPT_FAULT_ID_VALID, user_data);
    if (IS_ERR(domain)) return out_abort(PTR_ERR(domain));
    // hwpt->domain->owner = ops and ->iommufd_hwpt: the shared domain already names its owner
    hwpt_paging.domain = domain;

    if (idev.enforce_cache_coherency) {
      const rc = iommufd_hwpt_paging_enforce_cc(hwpt_paging);
      if (rc) {
        k.sim.oops('iommufd_hwpt_paging_alloc: the driver reports ENFORCE_CACHE_COHERENCY but its domain refused it'); // WARN_ON
      }
    }

    // only for drivers that finish a domain at attach; the auto-domain path prefers it
    if (immediate_attach) {
      const rc = iommufd_hw_pagetable_attach(hwpt_paging, idev, pasid);
      if (rc) return out_abort(rc);
    }

    const rc = iopt_table_add_domain(ioas.iopt, domain);
    if (rc) {
      if (immediate_attach) iommufd_hw_pagetable_detach(idev, pasid);
      return out_abort(rc);
    }
    ioas.hwpt_list.push(hwpt_paging);
    hwpt_paging.on_hwpt_list = true;
    return hwpt_paging;
  });
}

/**
 * iommufd_hwpt_nested_alloc: a NESTED domain from the driver over `parent`, which must be a
 * user-made NEST_PARENT domain of the same driver. user_data must carry data (len ≠ 0).
 */
function iommufd_hwpt_nested_alloc(
  ictx: IommufdCtx,
  parent: IommufdHwptPaging,
  idev: IommufdDevice,
  flags: number,
  user_data: IommuUserData,
): IommufdHwptNested | ErrPtr {
  return ictx.k.sim.call(FN.nested_alloc, () => {
    const ops = dev_iommu_ops(idev);
    if (flags & ~(IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_PASID) || !user_data.len || !ops.domain_alloc_nested) return ERR_PTR(-EOPNOTSUPP);
    if (parent.auto_domain || !parent.nest_parent || parent.domain!.owner !== ops) return ERR_PTR(-EINVAL);

    const hwpt_nested = iommufd_object_alloc<IommufdHwptNested>(ictx, 'HWPT_NESTED', () => ({
      type: 'HWPT_NESTED' as const,
      domain: null,
      fault: null,
      pasid_compat: (flags & IOMMU_HWPT_ALLOC_PASID) !== 0,
      parent,
    }));
    if (IS_ERR(hwpt_nested)) return hwpt_nested;
    iommufd_object_get_users(parent);

    // the driver copies (and validates) its own struct from user_data->uptr
    const domain = ops.domain_alloc_nested(idev.dev, parent.domain!, flags & ~IOMMU_HWPT_FAULT_ID_VALID, user_data);
    let rc = 0;
    if (IS_ERR(domain)) rc = PTR_ERR(domain);
    else {
      hwpt_nested.domain = domain;
      if (domain.type !== 'nested') rc = -EOPNOTSUPP; // WARN_ON_ONCE
    }
    if (rc) {
      iommufd_object_abort_and_destroy(ictx, hwpt_nested);
      return ERR_PTR(rc);
    }
    return hwpt_nested;
  });
}

/**
 * IOMMU_HWPT_ALLOC: the kind of pt_id picks the kind of HWPT (IOAS → paging, HWPT_PAGING →
 * nested; a vIOMMU is not modelled and falls to EINVAL with every other kind). A pt_id that
 * names nothing is EINVAL, not ENOENT. FAULT_ID_VALID takes the FAULT object last.
 */
export function iommufd_hwpt_alloc(ucmd: IommufdUcmd): number {
  const { ictx, cmd } = ucmd;
  return ictx.k.sim.call(FN.hwpt_alloc, () => {
    const data_type = u32(cmd, 'data_type');
    const data_len = u32(cmd, 'data_len');
    const flags = u32(cmd, 'flags');
    const user_data: IommuUserData = { type: data_type, uptr: uptr(Number(u64(cmd, 'data_uptr'))), len: data_len };

    if (u32(cmd, '__reserved')) return -EOPNOTSUPP;
    if ((data_type === IOMMU_HWPT_DATA_NONE && data_len) || (data_type !== IOMMU_HWPT_DATA_NONE && !data_len)) return -EINVAL;

    const idev = iommufd_get_device(ucmd, u32(cmd, 'dev_id'));
    if (IS_ERR(idev)) return PTR_ERR(idev);

    const pt_obj = iommufd_get_object(ictx, u32(cmd, 'pt_id'), 'ANY');
    if (IS_ERR(pt_obj)) {
      iommufd_put_object(ictx, idev);
      return -EINVAL;
    }

    let ioas: IommufdIoas | null = null;
    let rc = 0;
    let hwpt: IommufdHwPagetable | null = null;
    if (pt_obj.type === 'IOAS') {
      ioas = pt_obj as IommufdIoas;
      mutex_lock(ioas.mutex);
      const hwpt_paging = iommufd_hwpt_paging_alloc(ictx, ioas, idev, IOMMU_NO_PASID, flags, false, user_data.len ? user_data : null);
      if (IS_ERR(hwpt_paging)) rc = PTR_ERR(hwpt_paging);
      else hwpt = hwpt_paging;
    } else if (pt_obj.type === 'HWPT_PAGING') {
      const hwpt_nested = iommufd_hwpt_nested_alloc(ictx, pt_obj as IommufdHwptPaging, idev, flags, user_data);
      if (IS_ERR(hwpt_nested)) rc = PTR_ERR(hwpt_nested);
      else hwpt = hwpt_nested;
    } else {
      rc = -EINVAL;
    }

    if (hwpt && flags & IOMMU_HWPT_FAULT_ID_VALID) {
      const fault = iommufd_get_fault(ucmd, u32(cmd, 'fault_id'));
      if (IS_ERR(fault)) rc = PTR_ERR(fault);
      else {
        hwpt.fault = fault;
        // hwpt->domain->iopf_handler = iommufd_fault_iopf_handler; ->fault_data = hwpt
        const h = hwpt;
        hwpt.domain!.iopf_handler = (group) => iommufd_fault_iopf_handler(h, group);
        iommufd_object_get_users(fault);
        iommufd_put_object(ictx, fault);
      }
    }

    if (hwpt && !rc) {
      cmd.out_hwpt_id = hwpt.id;
      rc = iommufd_ucmd_respond(ucmd, sizeOf(ucmd.decl));
      if (!rc) iommufd_object_finalize(ictx, hwpt);
    }
    if (hwpt && rc) iommufd_object_abort_and_destroy(ictx, hwpt);
    if (ioas) mutex_unlock(ioas.mutex);
    iommufd_put_object(ictx, pt_obj);
    iommufd_put_object(ictx, idev);
    return rc;
  });
}

/**
 * IOMMU_HWPT_INVALIDATE: the core reads only the header; the entries stay in user memory as an
 * iommu_user_data_array {type, uptr, entry_len, entry_num} that the driver copies one entry at a
 * time. Only a NESTED HWPT takes it (a vIOMMU is not modelled; anything else is EINVAL). The
 * header goes back with entry_num = the entries handled, even when the call fails.
 */
export function iommufd_hwpt_invalidate(ucmd: IommufdUcmd): number {
  const { ictx, cmd } = ucmd;
  return ictx.k.sim.call(FN.invalidate, () => {
    const data_array: IommuUserDataArray = {
      type: u32(cmd, 'data_type'),
      uptr: uptr(Number(u64(cmd, 'data_uptr'))),
      entry_len: u32(cmd, 'entry_len'),
      entry_num: u32(cmd, 'entry_num'),
    };
    let done_num = 0;
    const rc = ((): number => {
      if (u32(cmd, '__reserved')) return -EOPNOTSUPP;
      if (data_array.entry_num && (!u64(cmd, 'data_uptr') || !data_array.entry_len)) return -EINVAL;
      const pt_obj = iommufd_get_object(ictx, u32(cmd, 'hwpt_id'), 'ANY');
      if (IS_ERR(pt_obj)) return PTR_ERR(pt_obj);
      let ret: number;
      if (pt_obj.type === 'HWPT_NESTED') {
        const domain = (pt_obj as IommufdHwptNested).domain!;
        if (!domain.ops.cache_invalidate_user) ret = -EOPNOTSUPP;
        else {
          ret = domain.ops.cache_invalidate_user(domain, data_array);
          done_num = data_array.entry_num;
        }
      } else {
        ret = -EINVAL;
      }
      iommufd_put_object(ictx, pt_obj);
      return ret;
    })();
    cmd.entry_num = done_num;
    if (iommufd_ucmd_respond(ucmd, sizeOf(ucmd.decl))) return -EFAULT;
    return rc;
  });
}
