import { kfn, type KFn } from '../../sim/index.ts';
import { EBUSY, EFAULT, ENOENT, ENOMEM, ERR_PTR, type ErrPtr } from '../kernel/errno.ts';
import type { File } from '../kernel/files.ts';
import type { Kernel } from '../kernel/kernel.ts';
import type { RwSem } from '../kernel/locks.ts';
import type { UserPtr } from '../kernel/mm.ts';
import { kfree, kzalloc, type KAlloc } from '../kernel/slab.ts';
import { copy_to_user } from '../kernel/uaccess.ts';
import { encode, type StructDecl, type UapiObject } from '../kernel/uapi/index.ts';
import type { XArray } from '../kernel/xarray.ts';
import type { IommuCore } from '../iommu/iommu.ts';
import type { IoPgfault } from '../iommu/io-pgfault.ts';

/**
 * The iommufd object model (iommufd_private.h, main.c and driver.c @ v6.15): the per-fd context, the
 * objects in its xarray with their `users` / `shortterm_users` refcounts, and the ucmd every
 * handler receives. Later parts (hw_pagetable, device, fault) add object types by registering
 * their ops here and ioctls by adding rows to main.ts's table.
 */
const fn = (name: string, sig: string, file = 'main.c'): KFn =>
  kfn({ name, layer: 'iommufd', sig, prov: { kind: 'merged', source: `drivers/iommu/iommufd/${file} @ v6.15` } });

const FN = {
  alloc: fn('_iommufd_object_alloc', 'struct iommufd_object *_iommufd_object_alloc(struct iommufd_ctx *ictx, size_t size, enum iommufd_object_type type)', 'driver.c'),
  finalize: fn('iommufd_object_finalize', 'void iommufd_object_finalize(struct iommufd_ctx *ictx, struct iommufd_object *obj)'),
  abort: fn('iommufd_object_abort', 'void iommufd_object_abort(struct iommufd_ctx *ictx, struct iommufd_object *obj)'),
  abort_destroy: fn('iommufd_object_abort_and_destroy', 'void iommufd_object_abort_and_destroy(struct iommufd_ctx *ictx, struct iommufd_object *obj)'),
  get: fn('iommufd_get_object', 'struct iommufd_object *iommufd_get_object(struct iommufd_ctx *ictx, u32 id, enum iommufd_object_type type)'),
  remove: fn('iommufd_object_remove', 'int iommufd_object_remove(struct iommufd_ctx *ictx, struct iommufd_object *to_destroy, u32 id, unsigned int flags)'),
  respond: fn('iommufd_ucmd_respond', 'int iommufd_ucmd_respond(struct iommufd_ucmd *ucmd, size_t cmd_len)'),
};

/** enum iommufd_object_type */
export type IommufdObjectType =
  | 'ANY'
  | 'DEVICE'
  | 'HWPT_PAGING'
  | 'HWPT_NESTED'
  | 'IOAS'
  | 'ACCESS'
  | 'FAULT'
  | 'VIOMMU'
  | 'VDEVICE'
  | 'VEVENTQ'
  | 'SELFTEST';

/** enum iopt_pages account mode (io_pagetable.h) */
export type IoptPagesAccount = 'NONE' | 'USER' | 'MM';

/** xa_limit_31b: ids are [1, 2^31 − 1] (XA_FLAGS_ALLOC1) */
export const IOMMUFD_ID_MIN = 1;
export const IOMMUFD_ID_MAX = 0x7fff_ffff;

/** What module init set up (iommufd_init): later parts hang their state here. */
export interface IommufdModule {
  readonly k: Kernel;
  readonly core: IommuCore;
  /** io-pgfault's iopf_group_response / iopf_free_group (fault.ts) */
  readonly iopf: IoPgfault;
}

/** struct iommufd_ctx */
export interface IommufdCtx {
  readonly mod: IommufdModule;
  readonly k: Kernel;
  readonly file: File;
  readonly objects: XArray<IommufdObject>;
  /** ioas_creation_lock: IOAS finalize takes it for read */
  readonly ioas_creation_lock: RwSem;
  account_mode: IoptPagesAccount;
  /** the VFIO-compat IOAS (IOMMU_VFIO_IOAS) */
  vfio_ioas: IommufdObject | null;
  /** ictx->groups: one iommufd_group per IOMMU group id with a bound device (device.ts) */
  readonly groups: Map<number, IommufdGroupRef>;
  readonly alloc: KAlloc;
}

/**
 * struct iommufd_object. A concrete object (struct iommufd_ioas, …) extends it, as the C struct
 * embeds it first; container_of is a checked downcast.
 */
export interface IommufdObject {
  readonly type: IommufdObjectType;
  id: number;
  /** the xarray holds 1; each long-term reference (an HWPT on its IOAS, …) holds 1 */
  users: number;
  /** the xarray holds 1; each ioctl that looked the object up holds 1 until it puts it */
  shortterm_users: number;
  /** false while the xarray slot holds XA_ZERO_ENTRY: between alloc and finalize */
  published: boolean;
  readonly ictx: IommufdCtx;
  readonly alloc: KAlloc;
}

/** what ictx->groups holds: device.ts's struct iommufd_group (kept opaque here) */
export interface IommufdGroupRef {
  readonly ref: { count: number };
}

/** struct iommufd_object_ops */
export interface IommufdObjectOps {
  destroy(obj: IommufdObject): void;
  abort?(obj: IommufdObject): void;
}

/** iommufd_object_ops[]: one row per object type, registered by the file that defines the type. */
const iommufd_object_ops = new Map<IommufdObjectType, IommufdObjectOps>();

export function iommufd_register_object_ops(type: IommufdObjectType, ops: IommufdObjectOps): void {
  iommufd_object_ops.set(type, ops);
}

function opsOf(obj: IommufdObject): IommufdObjectOps {
  const ops = iommufd_object_ops.get(obj.type);
  if (!ops) obj.ictx.k.sim.oops(`iommufd: no object ops for type ${obj.type}`);
  return ops;
}

/** struct iommufd_ucmd: the decoded command and where it came from. */
export interface IommufdUcmd {
  readonly ictx: IommufdCtx;
  readonly ubuffer: UserPtr;
  readonly user_size: number;
  /** the struct this ioctl is declared with: the type is set at the ioctl */
  readonly decl: StructDecl;
  readonly cmd: UapiObject;
}

/** A u32 (or narrower) member of a decoded command. */
export function u32(cmd: UapiObject, member: string): number {
  const v = cmd[member];
  if (typeof v !== 'number') throw new Error(`iommufd: ${member} is not a ≤32-bit member`);
  return v;
}

/** A u64 member of a decoded command. */
export function u64(cmd: UapiObject, member: string): bigint {
  const v = cmd[member];
  if (typeof v !== 'bigint') throw new Error(`iommufd: ${member} is not a 64-bit member`);
  return v;
}

/**
 * _iommufd_object_alloc: kzalloc of the whole object, then an id reserved with XA_ZERO_ENTRY so
 * lookups cannot see it until iommufd_object_finalize. `fields` builds the type's own members
 * (what the caller initialises after iommufd_object_alloc returns; it must not fail).
 */
export function iommufd_object_alloc<T extends IommufdObject>(
  ictx: IommufdCtx,
  type: IommufdObjectType,
  fields: (obj: IommufdObject) => Omit<T, keyof IommufdObject>,
): T | ErrPtr {
  const k = ictx.k;
  return k.sim.call(FN.alloc, () => {
    const alloc = kzalloc(k, `struct iommufd_${type.toLowerCase()}`);
    if (!alloc) return ERR_PTR(-ENOMEM);
    const base: IommufdObject = { type, id: 0, users: 1, shortterm_users: 1, published: false, ictx, alloc };
    // xa_alloc(XA_ZERO_ENTRY): the id is reserved, lookups do not see it until finalize
    const id = ictx.objects.alloc(base, IOMMUFD_ID_MIN, IOMMUFD_ID_MAX);
    if (id < 0) {
      kfree(k, alloc);
      return ERR_PTR(id);
    }
    base.id = id;
    // the caller's initialisation of its own members (the same object: container_of works)
    return Object.assign(base, fields(base)) as T;
  });
}

/** Publishes the object: from now on lookups find it and it cannot be aborted. */
export function iommufd_object_finalize(ictx: IommufdCtx, obj: IommufdObject): void {
  ictx.k.sim.call(FN.finalize, () => {
    if (obj.published) ictx.k.sim.oops(`iommufd_object_finalize: id ${obj.id} already published`);
    obj.published = true;
  });
}

/** Undoes iommufd_object_alloc of an object that needs no destroy. */
export function iommufd_object_abort(ictx: IommufdCtx, obj: IommufdObject): void {
  ictx.k.sim.call(FN.abort, () => {
    if (obj.published) ictx.k.sim.oops(`iommufd_object_abort: id ${obj.id} is published`);
    ictx.objects.erase(obj.id);
    kfree(ictx.k, obj.alloc);
  });
}

/** Aborts a fully initialised, unpublished object: its type's abort (or destroy), then abort. */
export function iommufd_object_abort_and_destroy(ictx: IommufdCtx, obj: IommufdObject): void {
  ictx.k.sim.call(FN.abort_destroy, () => {
    const ops = opsOf(obj);
    (ops.abort ?? ops.destroy)(obj);
    iommufd_object_abort(ictx, obj);
  });
}

/** iommufd_lock_obj: a short-term reference, only while the object has users. */
export function iommufd_lock_obj(obj: IommufdObject): boolean {
  if (obj.users === 0) return false;
  obj.users++;
  obj.shortterm_users++;
  return true;
}

/**
 * iommufd_get_object: the object of that id and type with a short-term reference, or ENOENT (an
 * unknown id, an unpublished one, the wrong type, or the fail-nth hook: iommufd_should_fail).
 */
export function iommufd_get_object(ictx: IommufdCtx, id: number, type: IommufdObjectType): IommufdObject | ErrPtr {
  return ictx.k.sim.call(FN.get, () => {
    const obj = ictx.objects.load(id);
    if (!obj || !obj.published || (type !== 'ANY' && obj.type !== type) || !iommufd_lock_obj(obj)) return ERR_PTR(-ENOENT);
    return obj;
  });
}

/** iommufd_put_object: drops what iommufd_get_object took. */
export function iommufd_put_object(ictx: IommufdCtx, obj: IommufdObject): void {
  if (obj.users <= 0 || obj.shortterm_users <= 0) ictx.k.sim.oops(`iommufd_put_object: id ${obj.id} refcount underflow`);
  obj.users--;
  obj.shortterm_users--;
}

/** A long-term reference (refcount_inc(&obj->users)), e.g. an HWPT on its IOAS. */
export function iommufd_object_get_users(obj: IommufdObject): void {
  obj.users++;
}

export function iommufd_object_put_users(obj: IommufdObject): void {
  if (obj.users <= 1) obj.ictx.k.sim.oops(`iommufd: id ${obj.id} users would drop the xarray's reference`);
  obj.users--;
}

/**
 * iommufd_object_remove: removes an id whose only user is the xarray (IOMMU_DESTROY passes no
 * object; a kernel caller passes the object it holds). EBUSY while referenced, ENOENT when absent.
 */
export function iommufd_object_remove(ictx: IommufdCtx, to_destroy: IommufdObject | null, id: number): number {
  return ictx.k.sim.call(FN.remove, () => {
    // xas_load under xa_lock. IOMMU_DESTROY's load passes the fail-nth hook (ENOENT is a legal
    // answer there); a kernel caller removing the object it holds cannot fail, so it peeks
    const obj = to_destroy ? xa_peek(ictx, id) : ictx.objects.load(id);
    if (to_destroy) {
      to_destroy.users--; // the caller's reference, put under the lock
      if (obj !== to_destroy) ictx.k.sim.oops(`iommufd_object_remove: id ${id} is not the object given`);
    } else if (!obj || !obj.published) {
      return -ENOENT;
    }
    if (obj.users !== 1) return -EBUSY; // refcount_dec_if_one
    obj.users = 0;
    ictx.objects.erase(id);
    if (ictx.vfio_ioas === obj) ictx.vfio_ioas = null;
    // iommufd_object_dec_wait_shortterm: ioctls run to completion here, so nobody else holds one
    if (--obj.shortterm_users !== 0) ictx.k.sim.oops(`iommufd_object_remove: id ${id} still has short-term users`);
    iommufd_object_destroy(obj);
    return 0;
  });
}

/**
 * iommufd_object_destroy_user: a kernel user (a driver's unbind) destroys the object it holds a
 * reference on; anything else still holding it is a refcount bug (WARN in the kernel).
 */
export function iommufd_object_destroy_user(ictx: IommufdCtx, obj: IommufdObject): void {
  const rc = iommufd_object_remove(ictx, obj, obj.id);
  if (rc) ictx.k.sim.oops(`iommufd_object_destroy_user: id ${obj.id} still in use (${rc})`);
}

/** iommufd_object_put_and_try_destroy: drops the caller's reference; destroys if it was the last user. */
export function iommufd_object_put_and_try_destroy(ictx: IommufdCtx, obj: IommufdObject): void {
  iommufd_object_remove(ictx, obj, obj.id);
}

/** The entry at `id` without a lookup primitive (the caller holds a reference on it). */
function xa_peek(ictx: IommufdCtx, id: number): IommufdObject | undefined {
  for (const [i, o] of ictx.objects.entries()) if (i === id) return o;
  return undefined;
}

/** An object out of the xarray with no users: iommufd_object_ops[type].destroy(obj); kfree(obj). */
export function iommufd_object_destroy(obj: IommufdObject): void {
  opsOf(obj).destroy(obj);
  kfree(obj.ictx.k, obj.alloc);
}

/**
 * iommufd_ucmd_respond: copies the command struct back, as many bytes as both sides know
 * (min(user size, kernel size)); EFAULT if that fails.
 */
export function iommufd_ucmd_respond(ucmd: IommufdUcmd, cmd_len: number): number {
  const k = ucmd.ictx.k;
  return k.sim.call(FN.respond, () => {
    const bytes = encode(ucmd.decl, ucmd.cmd);
    return copy_to_user(k, ucmd.ubuffer, bytes, Math.min(ucmd.user_size, cmd_len)) ? -EFAULT : 0;
  });
}

