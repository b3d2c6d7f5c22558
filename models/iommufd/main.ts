import { kfn, type KFn } from '../../sim/index.ts';
import { EBADF, EBADFD, EINVAL, ENOMEM, ENOTTY, EOPNOTSUPP, EFAULT, ERR_PTR, type ErrPtr } from '../kernel/errno.ts';
import { get_file, fput, type File, type FileOperations } from '../kernel/files.ts';
import { _IOC_NR } from '../kernel/ioctl.ts';
import type { Kernel } from '../kernel/kernel.ts';
import { RwSem } from '../kernel/locks.ts';
import { uptr, type UserPtr } from '../kernel/mm.ts';
import { kfree, kzalloc } from '../kernel/slab.ts';
import { copy_struct_from_user, copy_to_user, get_user } from '../kernel/uaccess.ts';
import {
  IOMMU_OPTION_HUGE_PAGES,
  IOMMU_OPTION_RLIMIT_MODE,
  decode,
  encode,
  iommu_destroy,
  iommu_hw_info,
  iommu_fault_alloc,
  iommu_hwpt_alloc,
  iommu_hwpt_invalidate,
  iommu_ioas_alloc,
  iommu_ioas_allow_iovas,
  iommu_ioas_copy,
  iommu_ioas_iova_ranges,
  iommu_ioas_map,
  iommu_ioas_unmap,
  iommu_option,
  iommu_vfio_ioas,
  offsetOf,
  offsetOfEnd,
  sizeOf,
  type StructDecl,
} from '../kernel/uapi/index.ts';
import { XArray } from '../kernel/xarray.ts';
import type { IommuCore } from '../iommu/iommu.ts';
import { IoPgfault } from '../iommu/io-pgfault.ts';
import { iommufd_get_hw_info } from './device.ts';
import { iommufd_fault_alloc } from './fault.ts';
import { iommufd_hwpt_alloc, iommufd_hwpt_invalidate } from './hw_pagetable.ts';
import {
  iommufd_ioas_allow_iovas,
  iommufd_ioas_alloc_ioctl,
  iommufd_ioas_copy,
  iommufd_ioas_iova_ranges,
  iommufd_ioas_map,
  iommufd_ioas_option,
  iommufd_ioas_unmap,
  iommufd_option_rlimit_mode,
} from './ioas.ts';
import { IOMMUFD_CMDS, IOMMUFD_CMD_BASE, IOMMU_IOCTL, iommufd_ioctl_name, type IommufdIoctlName } from './iommufd_h.ts';
import {
  iommufd_object_destroy,
  iommufd_object_remove,
  u32,
  type IommufdCtx,
  type IommufdModule,
  type IommufdObject,
  type IommufdUcmd,
} from './iommufd_private.ts';
import { iommufd_vfio_ioas } from './vfio_compat.ts';

/**
 * /dev/iommu (drivers/iommu/iommufd/main.c @ v6.15): open makes an iommufd_ctx; every ioctl goes
 * through one table whose rows give the struct, its size and minimum size, and the handler, so the
 * uAPI type is fixed at the ioctl; close destroys every object, leaves first.
 *
 * Adding an ioctl (hw_pagetable.ts, device.ts, fault.ts): add an IOCTL_OP row to
 * iommufd_ioctl_ops below, with the struct declaration and its last first-version member.
 */
const SRC = 'drivers/iommu/iommufd/main.c @ v6.15';
const fn = (name: string, sig: string, extra: Partial<KFn> = {}): KFn =>
  kfn({ name, layer: 'iommufd', sig, prov: { kind: 'merged', source: SRC }, ...extra });

const FN = {
  ioctl: fn('iommufd_fops_ioctl', 'static long iommufd_fops_ioctl(struct file *filp, unsigned int cmd, unsigned long arg)', {
    entry: 'ioctl',
    uapi: { param: 'arg', ctype: 'unsigned long' },
  }),
  open: fn('iommufd_fops_open', 'static int iommufd_fops_open(struct inode *inode, struct file *filp)'),
  release: fn('iommufd_fops_release', 'static int iommufd_fops_release(struct inode *inode, struct file *filp)'),
  destroy: fn('iommufd_destroy', 'static int iommufd_destroy(struct iommufd_ucmd *ucmd)', {
    uapi: { param: 'ucmd->cmd', ctype: 'struct iommu_destroy *' },
  }),
  option: fn('iommufd_option', 'static int iommufd_option(struct iommufd_ucmd *ucmd)', {
    uapi: { param: 'ucmd->cmd', ctype: 'struct iommu_option *' },
  }),
  init: fn('iommufd_init', 'static int __init iommufd_init(void)'),
};


/** struct iommufd_ioctl_op */
export interface IommufdIoctlOp {
  readonly name: IommufdIoctlName;
  readonly ioctl_num: number;
  readonly decl: StructDecl;
  /** sizeof(struct): what copy_struct_from_user fills */
  readonly size: number;
  /** offsetofend(struct, last member of the first version) */
  readonly min_size: number;
  readonly execute: (ucmd: IommufdUcmd) => number;
}

/** IOCTL_OP(_ioctl, _fn, _struct, _last) */
export function IOCTL_OP(name: IommufdIoctlName, execute: (ucmd: IommufdUcmd) => number, decl: StructDecl, last: string): IommufdIoctlOp {
  return { name, ioctl_num: IOMMU_IOCTL[name], decl, size: sizeOf(decl), min_size: offsetOfEnd(decl, last), execute };
}

function iommufd_destroy(ucmd: IommufdUcmd): number {
  return ucmd.ictx.k.sim.call(FN.destroy, () => iommufd_object_remove(ucmd.ictx, null, u32(ucmd.cmd, 'id')));
}

/** IOMMU_OPTION: copies back only val64. */
function iommufd_option(ucmd: IommufdUcmd): number {
  const { ictx, cmd } = ucmd;
  return ictx.k.sim.call(FN.option, () => {
    if (u32(cmd, '__reserved')) return -EOPNOTSUPP;
    let rc: number;
    switch (u32(cmd, 'option_id')) {
      case IOMMU_OPTION_RLIMIT_MODE:
        rc = iommufd_option_rlimit_mode(cmd, ictx);
        break;
      case IOMMU_OPTION_HUGE_PAGES:
        rc = iommufd_ioas_option(ucmd);
        break;
      default:
        return -EOPNOTSUPP;
    }
    if (rc) return rc;
    const off = offsetOf(iommu_option, 'val64');
    const bytes = encode(iommu_option, cmd).subarray(off, off + 8);
    return copy_to_user(ictx.k, uptr(ucmd.ubuffer + off), bytes, 8) ? -EFAULT : 0;
  });
}

/** iommufd_ioctl_ops[]: the ioctls this model implements, in header order. */
export const iommufd_ioctl_ops: readonly IommufdIoctlOp[] = [
  IOCTL_OP('IOMMU_DESTROY', iommufd_destroy, iommu_destroy, 'id'),
  IOCTL_OP('IOMMU_IOAS_ALLOC', iommufd_ioas_alloc_ioctl, iommu_ioas_alloc, 'out_ioas_id'),
  IOCTL_OP('IOMMU_IOAS_ALLOW_IOVAS', iommufd_ioas_allow_iovas, iommu_ioas_allow_iovas, 'allowed_iovas'),
  IOCTL_OP('IOMMU_IOAS_COPY', iommufd_ioas_copy, iommu_ioas_copy, 'src_iova'),
  IOCTL_OP('IOMMU_IOAS_IOVA_RANGES', iommufd_ioas_iova_ranges, iommu_ioas_iova_ranges, 'out_iova_alignment'),
  IOCTL_OP('IOMMU_IOAS_MAP', iommufd_ioas_map, iommu_ioas_map, 'iova'),
  IOCTL_OP('IOMMU_IOAS_UNMAP', iommufd_ioas_unmap, iommu_ioas_unmap, 'length'),
  IOCTL_OP('IOMMU_OPTION', iommufd_option, iommu_option, 'val64'),
  IOCTL_OP('IOMMU_VFIO_IOAS', iommufd_vfio_ioas, iommu_vfio_ioas, '__reserved'),
  IOCTL_OP('IOMMU_HWPT_ALLOC', iommufd_hwpt_alloc, iommu_hwpt_alloc, '__reserved'),
  IOCTL_OP('IOMMU_GET_HW_INFO', iommufd_get_hw_info, iommu_hw_info, '__reserved'),
  IOCTL_OP('IOMMU_HWPT_INVALIDATE', iommufd_hwpt_invalidate, iommu_hwpt_invalidate, '__reserved'),
  IOCTL_OP('IOMMU_FAULT_QUEUE_ALLOC', iommufd_fault_alloc, iommu_fault_alloc, 'out_fault_fd'),
];

/** indexed by _IOC_NR(cmd) − IOMMUFD_CMD_BASE, as the kernel's array */
const opByNr = new Map<number, IommufdIoctlOp>(iommufd_ioctl_ops.map((op) => [_IOC_NR(op.ioctl_num), op]));

/**
 * iommufd_fops_ioctl: get_user the size; an unknown command is ENOTTY; a size below the first
 * version is EINVAL; copy_struct_from_user into a buffer of the kernel's size (zero-extends a
 * short struct; E2BIG for a non-zero tail it does not know); decode; run the handler.
 */
function iommufd_fops_ioctl(k: Kernel, file: File, cmd: number, arg: number): number {
  return k.sim.call(FN.ioctl, () => {
    const ictx = file.private_data as IommufdCtx;
    const nr = _IOC_NR(cmd);
    // below the base or past the table: iommufd_vfio_ioctl (VFIO type1 compatibility), not
    // modelled; it returns -ENOIOCTLCMD for what it does not know, which vfs_ioctl makes ENOTTY
    if (nr < IOMMUFD_CMD_BASE || nr - IOMMUFD_CMD_BASE >= IOMMUFD_CMDS.length) return -ENOTTY;
    const ubuffer: UserPtr = uptr(arg);
    const size = get_user(k, ubuffer, 4);
    if (size.err) return size.err;
    const op = opByNr.get(nr);
    // -ENOIOCTLCMD in the kernel, seen as ENOTTY; also a row not modelled yet
    if (!op || op.ioctl_num !== cmd >>> 0) return -ENOTTY;
    if (size.val < op.min_size) return -EINVAL;
    const buf = new Uint8Array(op.size);
    const ret = copy_struct_from_user(k, buf, op.size, ubuffer, size.val);
    if (ret) return ret;
    return op.execute({ ictx, ubuffer, user_size: size.val, decl: op.decl, cmd: decode(op.decl, buf) });
  });
}

function iommufd_fops_open(k: Kernel, file: File): number {
  return k.sim.call(FN.open, () => {
    const mod = file.private_data as IommufdModule;
    const alloc = kzalloc(k, 'struct iommufd_ctx');
    if (!alloc) return -ENOMEM;
    const ictx: IommufdCtx = {
      mod,
      k,
      file,
      objects: new XArray<IommufdObject>(k, 'ictx->objects'),
      ioas_creation_lock: new RwSem(k, 'ictx->ioas_creation_lock'),
      // /dev/vfio/vfio would default to IOPT_PAGES_ACCOUNT_MM
      account_mode: 'USER',
      vfio_ioas: null,
      groups: new Map(),
      alloc,
    };
    file.private_data = ictx;
    return 0;
  });
}

/**
 * iommufd_fops_release: the objects form a graph of `users` counts; destroying every object that
 * only the xarray holds, again and again, takes it apart leaves first.
 */
function iommufd_fops_release(k: Kernel, file: File): void {
  k.sim.call(FN.release, () => {
    const ictx = file.private_data as IommufdCtx;
    while (ictx.objects.size) {
      let destroyed = 0;
      for (const [index, obj] of [...ictx.objects.entries()]) {
        if (obj.users !== 1) continue; // refcount_dec_if_one
        obj.users = 0;
        destroyed++;
        ictx.objects.erase(index);
        iommufd_object_destroy(obj);
      }
      // a users refcount bug: the kernel WARNs and leaks the rest
      if (!destroyed) break;
    }
    kfree(k, ictx.alloc);
  });
}

/** struct file_operations iommufd_fops */
export const iommufd_fops: FileOperations = {
  type: 'iommufd',
  open: iommufd_fops_open,
  unlocked_ioctl: iommufd_fops_ioctl,
  release: iommufd_fops_release,
  ioctlName: (cmd) => iommufd_ioctl_name(cmd),
};

/**
 * iommufd_ctx_from_fd: fdget (EBADF), then iommufd_ctx_from_file. Runs in the caller's task
 * (VFIO's BIND_IOMMUFD, vhost-vdpa's SET_IOMMU_FD).
 */
export function iommufd_ctx_from_fd(k: Kernel, fd: number): IommufdCtx | ErrPtr {
  const file = k.cur().process.files.get(fd);
  if (!file) return ERR_PTR(-EBADF);
  return iommufd_ctx_from_file(file);
}

/** iommufd_ctx_from_file: the context of an iommufd file, with a reference (iommufd_ctx_put). */
export function iommufd_ctx_from_file(file: File): IommufdCtx | ErrPtr {
  if (file.f_op !== iommufd_fops) return ERR_PTR(-EBADFD);
  get_file(file);
  return file.private_data as IommufdCtx;
}

export function iommufd_ctx_get(ictx: IommufdCtx): void {
  get_file(ictx.file);
}

export function iommufd_ctx_put(ictx: IommufdCtx): void {
  fput(ictx.k, ictx.file);
}

/** module_init(iommufd_init): registers /dev/iommu (misc_register). */
export function iommufd_init(k: Kernel, core: IommuCore, iopf?: IoPgfault): IommufdModule {
  return k.sim.call(FN.init, () => {
    // io-pgfault keeps its state per device (dev->iommu->fault_param): any handle on it will do
    const mod: IommufdModule = { k, core, iopf: iopf ?? new IoPgfault(k, core) };
    k.devfs.register('/dev/iommu', iommufd_fops, mod);
    return mod;
  });
}
