import { kfn, type KFn } from '../../sim/index.ts';
import { EBUSY, EFAULT, EINVAL, EMSGSIZE, ENOMEM, EOPNOTSUPP, EOVERFLOW, IS_ERR, PTR_ERR, type ErrPtr } from '../kernel/errno.ts';
import { Mutex, down_read, up_read } from '../kernel/locks.ts';
import { uptr, type UserPtr } from '../kernel/mm.ts';
import { kfree, kzalloc } from '../kernel/slab.ts';
import { copy_from_user, copy_to_user } from '../kernel/uaccess.ts';
import {
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_OPTION_OP_GET,
  IOMMU_OPTION_OP_SET,
  IOMMU_OPTION_HUGE_PAGES,
  decode,
  encode,
  iommu_iova_range,
  sizeOf,
} from '../kernel/uapi/index.ts';
import { IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE } from '../iommu/types.ts';
import {
  IOPT_ALLOC_IOVA,
  interval_tree_spans,
  iopt_destroy_table,
  iopt_disable_large_pages,
  iopt_enable_large_pages,
  iopt_free_pages_list,
  iopt_get_pages,
  iopt_init_table,
  iopt_map_pages,
  iopt_map_user_pages,
  iopt_set_allow_iova,
  iopt_unmap_all,
  iopt_unmap_iova,
  type IoPagetable,
  type IoptAllowed,
  type IoptPagesList,
} from './io_pagetable.ts';
import {
  iommufd_get_object,
  iommufd_object_abort_and_destroy,
  iommufd_object_alloc,
  iommufd_object_finalize,
  iommufd_put_object,
  iommufd_register_object_ops,
  iommufd_ucmd_respond,
  u32,
  u64,
  type IommufdCtx,
  type IommufdObject,
  type IommufdUcmd,
} from './iommufd_private.ts';
import { ULONG_MAX } from './pages.ts';

/**
 * IOAS objects and their ioctls (drivers/iommu/iommufd/ioas.c @ v6.15). An IOAS is an
 * io_pagetable with an id: userspace maps user memory into it before or after any device or
 * domain exists, and every HWPT made from it mirrors it.
 */
const SRC = 'drivers/iommu/iommufd/ioas.c @ v6.15';
const fn = (name: string, sig: string): KFn => kfn({ name, layer: 'iommufd', sig, prov: { kind: 'merged', source: SRC } });
/** an ioctl handler: the uAPI type is set at the ioctl, in ucmd->cmd */
const handler = (name: string, struct: string, op: string | null): KFn =>
  kfn({
    name,
    layer: 'iommufd',
    sig: `int ${name}(struct iommufd_ucmd *ucmd)`,
    prov: { kind: 'merged', source: SRC },
    uapi: { param: 'ucmd->cmd', ctype: `struct ${struct} *` },
    ...(op ? { handler: true, op } : {}),
  });

const FN = {
  destroy: fn('iommufd_ioas_destroy', 'void iommufd_ioas_destroy(struct iommufd_object *obj)'),
  alloc: fn('iommufd_ioas_alloc', 'struct iommufd_ioas *iommufd_ioas_alloc(struct iommufd_ctx *ictx)'),
  load_iovas: fn('iommufd_ioas_load_iovas', 'static int iommufd_ioas_load_iovas(struct rb_root_cached *itree, struct iommu_iova_range __user *ranges, u32 num)'),
  rlimit_mode: fn('iommufd_option_rlimit_mode', 'int iommufd_option_rlimit_mode(struct iommu_option *cmd, struct iommufd_ctx *ictx)'),
  alloc_ioctl: handler('iommufd_ioas_alloc_ioctl', 'iommu_ioas_alloc', 'alloc'),
  iova_ranges: handler('iommufd_ioas_iova_ranges', 'iommu_ioas_iova_ranges', 'iova-ranges'),
  allow_iovas: handler('iommufd_ioas_allow_iovas', 'iommu_ioas_allow_iovas', 'iova-ranges'),
  map: handler('iommufd_ioas_map', 'iommu_ioas_map', 'map'),
  copy: handler('iommufd_ioas_copy', 'iommu_ioas_copy', 'map'),
  unmap: handler('iommufd_ioas_unmap', 'iommu_ioas_unmap', 'unmap'),
  option: handler('iommufd_ioas_option', 'iommu_option', null),
};

/** struct iommufd_ioas */
export interface IommufdIoas extends IommufdObject {
  readonly type: 'IOAS';
  readonly iopt: IoPagetable;
  /** ioas->mutex: serialises auto-domain HWPT creation (hw_pagetable.c) */
  readonly mutex: Mutex;
  /** the auto-domain HWPT_PAGING objects made from this IOAS (hw_pagetable.c fills it) */
  readonly hwpt_list: IommufdObject[];
}

/** iommufd_get_ioas (iommufd_private.h): an IOAS by id with a short-term reference, or ENOENT. */
export function iommufd_get_ioas(ictx: IommufdCtx, id: number): IommufdIoas | ErrPtr {
  const obj = iommufd_get_object(ictx, id, 'IOAS');
  return IS_ERR(obj) ? obj : (obj as IommufdIoas);
}

/** Destroy: unmap (and so unpin) everything, then free the table. */
export function iommufd_ioas_destroy(obj: IommufdObject): void {
  const ioas = obj as IommufdIoas;
  ioas.ictx.k.sim.call(FN.destroy, () => {
    const rc = iopt_unmap_all(ioas.iopt, null);
    if (rc) ioas.ictx.k.sim.oops(`iommufd_ioas_destroy: unmap_all failed (${rc})`);
    iopt_destroy_table(ioas.iopt);
  });
}

iommufd_register_object_ops('IOAS', { destroy: iommufd_ioas_destroy });

export function iommufd_ioas_alloc(ictx: IommufdCtx): IommufdIoas | ErrPtr {
  return ictx.k.sim.call(FN.alloc, () =>
    iommufd_object_alloc<IommufdIoas>(ictx, 'IOAS', (obj) => ({
      type: 'IOAS' as const,
      iopt: iopt_init_table(ictx.k, ictx.mod.core, `ioas${obj.id}`),
      mutex: new Mutex(ictx.k, 'ioas->mutex'),
      hwpt_list: [],
    })),
  );
}

export function iommufd_ioas_alloc_ioctl(ucmd: IommufdUcmd): number {
  const { ictx, cmd } = ucmd;
  return ictx.k.sim.call(FN.alloc_ioctl, () => {
    if (u32(cmd, 'flags')) return -EOPNOTSUPP;
    const ioas = iommufd_ioas_alloc(ictx);
    if (IS_ERR(ioas)) return PTR_ERR(ioas);
    cmd.out_ioas_id = ioas.id;
    const rc = iommufd_ucmd_respond(ucmd, sizeOf(ucmd.decl));
    if (rc) {
      iommufd_object_abort_and_destroy(ictx, ioas);
      return rc;
    }
    down_read(ictx.ioas_creation_lock);
    iommufd_object_finalize(ictx, ioas);
    up_read(ictx.ioas_creation_lock);
    return 0;
  });
}

/**
 * IOMMU_IOAS_IOVA_RANGES: the holes between reserved ranges. Writes as many as num_iovas allows,
 * returns the full count in num_iovas, and EMSGSIZE (after responding) when the array was short.
 */
export function iommufd_ioas_iova_ranges(ucmd: IommufdUcmd): number {
  const { ictx, cmd } = ucmd;
  const k = ictx.k;
  return k.sim.call(FN.iova_ranges, () => {
    if (u32(cmd, '__reserved')) return -EOPNOTSUPP;
    const ioas = iommufd_get_ioas(ictx, u32(cmd, 'ioas_id'));
    if (IS_ERR(ioas)) return PTR_ERR(ioas);
    const iopt = ioas.iopt;
    down_read(iopt.iova_rwsem);
    const max_iovas = u32(cmd, 'num_iovas');
    const ranges = u64(cmd, 'allowed_iovas');
    const elmsz = sizeOf(iommu_iova_range);
    let num = 0;
    let rc = 0;
    cmd.out_iova_alignment = iopt.iova_alignment;
    for (const span of interval_tree_spans(iopt.reserved_itree.map((r) => r.node), 0n, ULONG_MAX)) {
      if (!span.is_hole) continue;
      if (num < max_iovas) {
        const elm = encode(iommu_iova_range, { start: span.start, last: span.last });
        if (copy_to_user(k, userPtrAt(ranges, num * elmsz), elm, elmsz)) {
          rc = -EFAULT;
          break;
        }
      }
      num++;
    }
    if (!rc) {
      cmd.num_iovas = num;
      rc = iommufd_ucmd_respond(ucmd, sizeOf(ucmd.decl));
      if (!rc && num > max_iovas) rc = -EMSGSIZE;
    }
    up_read(iopt.iova_rwsem);
    iommufd_put_object(ictx, ioas);
    return rc;
  });
}

function userPtrAt(base: bigint, off: number): UserPtr {
  return uptr(Number(base) + off);
}

/** Reads and checks the user's ranges into a new tree: EINVAL for start ≥ last or an overlap. */
function iommufd_ioas_load_iovas(ictx: IommufdCtx, itree: IoptAllowed[], ranges: bigint, num: number): number {
  const k = ictx.k;
  return k.sim.call(FN.load_iovas, () => {
    const elmsz = sizeOf(iommu_iova_range);
    const buf = new Uint8Array(elmsz);
    for (let i = 0; i !== num; i++) {
      if (copy_from_user(k, buf, userPtrAt(ranges, i * elmsz), elmsz)) return -EFAULT;
      const range = decode(iommu_iova_range, buf);
      const start = range.start as bigint;
      const last = range.last as bigint;
      if (start >= last) return -EINVAL;
      if (itree.some((a) => a.node.start <= last && a.node.last >= start)) return -EINVAL;
      const alloc = kzalloc(k, 'struct iopt_allowed');
      if (!alloc) return -ENOMEM;
      itree.push({ alloc, node: { start, last } });
      itree.sort((a, b) => (a.node.start < b.node.start ? -1 : 1));
    }
    return 0;
  });
}

/** IOMMU_IOAS_ALLOW_IOVAS: replaces the allowed ranges atomically (num_iovas 0 allows everything). */
export function iommufd_ioas_allow_iovas(ucmd: IommufdUcmd): number {
  const { ictx, cmd } = ucmd;
  return ictx.k.sim.call(FN.allow_iovas, () => {
    if (u32(cmd, '__reserved')) return -EOPNOTSUPP;
    const ioas = iommufd_get_ioas(ictx, u32(cmd, 'ioas_id'));
    if (IS_ERR(ioas)) return PTR_ERR(ioas);
    const allowed_iova: { tree: IoptAllowed[] } = { tree: [] };
    let rc = iommufd_ioas_load_iovas(ictx, allowed_iova.tree, u64(cmd, 'allowed_iovas'), u32(cmd, 'num_iovas'));
    if (!rc) rc = iopt_set_allow_iova(ioas.iopt, allowed_iova);
    // on success the old tree, on failure the new one
    for (const a of allowed_iova.tree) kfree(ictx.k, a.alloc);
    iommufd_put_object(ictx, ioas);
    return rc;
  });
}

/** conv_iommu_prot: IOMMU_CACHE always (coherency is enforced at bind) */
function conv_iommu_prot(map_flags: number): number {
  let iommu_prot = IOMMU_CACHE;
  if (map_flags & IOMMU_IOAS_MAP_WRITEABLE) iommu_prot |= IOMMU_WRITE;
  if (map_flags & IOMMU_IOAS_MAP_READABLE) iommu_prot |= IOMMU_READ;
  return iommu_prot;
}

const MAP_FLAGS = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE;

/** IOMMU_IOAS_MAP: maps user memory at a fixed IOVA or one the kernel picks (returned in iova). */
export function iommufd_ioas_map(ucmd: IommufdUcmd): number {
  const { ictx, cmd } = ucmd;
  return ictx.k.sim.call(FN.map, () => {
    const flags = u32(cmd, 'flags');
    if (flags & ~MAP_FLAGS || u32(cmd, '__reserved')) return -EOPNOTSUPP;
    if (u64(cmd, 'iova') >= ULONG_MAX || u64(cmd, 'length') >= ULONG_MAX) return -EOVERFLOW;
    if (!(flags & (IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE))) return -EINVAL;
    const ioas = iommufd_get_ioas(ictx, u32(cmd, 'ioas_id'));
    if (IS_ERR(ioas)) return PTR_ERR(ioas);
    const iova = { iova: u64(cmd, 'iova') };
    let rc = iopt_map_user_pages(ictx, ioas.iopt, iova, u64(cmd, 'user_va'), u64(cmd, 'length'), conv_iommu_prot(flags), flags & IOMMU_IOAS_MAP_FIXED_IOVA ? 0 : IOPT_ALLOC_IOVA);
    if (!rc) {
      cmd.iova = iova.iova;
      rc = iommufd_ucmd_respond(ucmd, sizeOf(ucmd.decl));
    }
    iommufd_put_object(ictx, ioas);
    return rc;
  });
}

/**
 * IOMMU_IOAS_COPY: maps what [src_iova, +length) of one IOAS maps (whole areas, contiguous) into
 * another (or the same) IOAS. The iopt_pages are shared: no new pin, no new accounting.
 */
export function iommufd_ioas_copy(ucmd: IommufdUcmd): number {
  const { ictx, cmd } = ucmd;
  return ictx.k.sim.call(FN.copy, () => {
    const flags = u32(cmd, 'flags');
    if (flags & ~MAP_FLAGS) return -EOPNOTSUPP;
    const length = u64(cmd, 'length');
    if (length >= ULONG_MAX || u64(cmd, 'src_iova') >= ULONG_MAX || u64(cmd, 'dst_iova') >= ULONG_MAX) return -EOVERFLOW;
    if (!(flags & (IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE))) return -EINVAL;
    const src_ioas = iommufd_get_ioas(ictx, u32(cmd, 'src_ioas_id'));
    if (IS_ERR(src_ioas)) return PTR_ERR(src_ioas);
    const pages_list: IoptPagesList[] = [];
    let rc = iopt_get_pages(src_ioas.iopt, u64(cmd, 'src_iova'), length, pages_list);
    iommufd_put_object(ictx, src_ioas);
    if (rc) return rc;
    const dst_ioas = iommufd_get_ioas(ictx, u32(cmd, 'dst_ioas_id'));
    if (IS_ERR(dst_ioas)) {
      rc = PTR_ERR(dst_ioas);
    } else {
      const iova = { iova: u64(cmd, 'dst_iova') };
      rc = iopt_map_pages(dst_ioas.iopt, pages_list, length, iova, conv_iommu_prot(flags), flags & IOMMU_IOAS_MAP_FIXED_IOVA ? 0 : IOPT_ALLOC_IOVA);
      if (!rc) {
        cmd.dst_iova = iova.iova;
        rc = iommufd_ucmd_respond(ucmd, sizeOf(ucmd.decl));
      }
      iommufd_put_object(ictx, dst_ioas);
    }
    iopt_free_pages_list(ictx.k, pages_list);
    return rc;
  });
}

/**
 * IOMMU_IOAS_UNMAP: (0, U64_MAX) unmaps everything, even nothing; otherwise the range must cover
 * whole areas. length returns the bytes unmapped.
 */
export function iommufd_ioas_unmap(ucmd: IommufdUcmd): number {
  const { ictx, cmd } = ucmd;
  return ictx.k.sim.call(FN.unmap, () => {
    const ioas = iommufd_get_ioas(ictx, u32(cmd, 'ioas_id'));
    if (IS_ERR(ioas)) return PTR_ERR(ioas);
    const iova = u64(cmd, 'iova');
    const length = u64(cmd, 'length');
    const unmapped = { bytes: 0n };
    let rc: number;
    if (iova === 0n && length === ULONG_MAX) {
      rc = iopt_unmap_all(ioas.iopt, unmapped);
    } else if (iova >= ULONG_MAX || length >= ULONG_MAX) {
      rc = -EOVERFLOW;
    } else {
      rc = iopt_unmap_iova(ioas.iopt, iova, length, unmapped);
    }
    if (!rc) {
      cmd.length = unmapped.bytes;
      rc = iommufd_ucmd_respond(ucmd, sizeOf(ucmd.decl));
    }
    iommufd_put_object(ictx, ioas);
    return rc;
  });
}

/**
 * IOMMU_OPTION_RLIMIT_MODE: how pins are accounted (0 user, 1 mm). Setting it needs
 * CAP_SYS_RESOURCE (the modelled VMM is taken to have it) and an fd with no objects yet.
 */
export function iommufd_option_rlimit_mode(cmd: IommufdUcmd['cmd'], ictx: IommufdCtx): number {
  return ictx.k.sim.call(FN.rlimit_mode, () => {
    if (u32(cmd, 'object_id')) return -EOPNOTSUPP;
    const op = u32(cmd, 'op');
    if (op === IOMMU_OPTION_OP_GET) {
      cmd.val64 = ictx.account_mode === 'MM' ? 1n : 0n;
      return 0;
    }
    if (op !== IOMMU_OPTION_OP_SET) return -EOPNOTSUPP;
    if (ictx.objects.size) return -EBUSY;
    const val = u64(cmd, 'val64');
    if (val === 0n) ictx.account_mode = 'USER';
    else if (val === 1n) ictx.account_mode = 'MM';
    else return -EINVAL;
    return 0;
  });
}


/** IOMMU_OPTION_HUGE_PAGES on an IOAS: 0 maps in PAGE_SIZE units only (VFIO type1 compatibility). */
export function iommufd_ioas_option(ucmd: IommufdUcmd): number {
  const { ictx, cmd } = ucmd;
  return ictx.k.sim.call(FN.option, () => {
    if (u32(cmd, '__reserved')) return -EOPNOTSUPP;
    const ioas = iommufd_get_ioas(ictx, u32(cmd, 'object_id'));
    if (IS_ERR(ioas)) return PTR_ERR(ioas);
    let rc = -EOPNOTSUPP;
    if (u32(cmd, 'option_id') === IOMMU_OPTION_HUGE_PAGES) {
      const op = u32(cmd, 'op');
      if (op === IOMMU_OPTION_OP_GET) {
        cmd.val64 = ioas.iopt.disable_large_pages ? 0n : 1n;
        rc = 0;
      } else if (op === IOMMU_OPTION_OP_SET) {
        const val = u64(cmd, 'val64');
        if (val === 0n) rc = iopt_disable_large_pages(ioas.iopt);
        else if (val === 1n) {
          iopt_enable_large_pages(ioas.iopt);
          rc = 0;
        } else rc = -EINVAL;
      }
    }
    iommufd_put_object(ictx, ioas);
    return rc;
  });
}
