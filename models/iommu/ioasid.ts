import { kfn, type KFn } from '../../sim/index.ts';
import { EBUSY, EFAULT, EINVAL, ENOENT, ENOMEM, EPERM } from '../kernel/errno.ts';
import type { File, FileOperations } from '../kernel/files.ts';
import { _IO } from '../kernel/ioctl.ts';
import type { Kernel } from '../kernel/kernel.ts';
import { Mutex, SpinLock, mutex_lock, mutex_unlock, spin_lock_irqsave, spin_unlock_irqrestore } from '../kernel/locks.ts';
import { uptr, type Mm } from '../kernel/mm.ts';
import type { Task } from '../kernel/process.ts';
import { kfree, kzalloc, type KAlloc } from '../kernel/slab.ts';
import { copy_from_user, copy_to_user } from '../kernel/uaccess.ts';
import { IOASID_API_VERSION, decode, encode, ioasid_alloc_request, ioasid_info, offsetOfEnd } from '../kernel/uapi/index.ts';
import { XArray } from '../kernel/xarray.ts';

/**
 * Design A's PASID allocator: the parts of Jacob Pan's IOASID V4 series that v8 sits on.
 * - the IOASID core (drivers/iommu/ioasid.c with V4's sets, refcounts, ownership and FREE
 *   notifications): "[PATCH V4 xx/18]" <1614463286-97618-N-git-send-email-jacob.jun.pan@linux.intel.com>;
 * - /dev/ioasid (drivers/iommu/ioasid_user.c, "[PATCH V4 18/18] ioasid: Add /dev/ioasid for
 *   userspace", Liu Yi L), read in full; one ioasid_user and one mm-token set per process.
 * Posted, never merged. vPASID == pPASID: the VMM asks for exactly {pasid, pasid}.
 *
 * Not modelled: quotas and the ioasids cgroup (the set is allocated with quota 0, as the patch
 * does), SPIDs (guest PASIDs), BIND/UNBIND notifications to KVM. The FREE notification's
 * workqueue runs inline.
 */
const IOASID_C: KFn['prov'] = { kind: 'posted', source: 'drivers/iommu/ioasid.c, IOASID V4 <1614463286-97618-1-git-send-email-jacob.jun.pan@linux.intel.com>' };
const USER_C: KFn['prov'] = { kind: 'posted', source: '[PATCH V4 18/18] ioasid: Add /dev/ioasid for userspace <1614463286-97618-19-git-send-email-jacob.jun.pan@linux.intel.com>' };
const core = (name: string, sig: string): KFn => kfn({ name, layer: 'ioasid', sig, prov: IOASID_C });
const user = (name: string, sig: string, extra: Partial<KFn> = {}): KFn => kfn({ name, layer: 'ioasid', sig, prov: USER_C, ...extra });

const FN = {
  set_alloc: core('ioasid_set_alloc', 'struct ioasid_set *ioasid_set_alloc(void *token, ioasid_t quota, int type)'),
  set_free: core('ioasid_set_free', 'int ioasid_set_free(struct ioasid_set *set)'),
  alloc: core('ioasid_alloc', 'ioasid_t ioasid_alloc(struct ioasid_set *set, ioasid_t min, ioasid_t max, void *private)'),
  free: core('ioasid_free', 'void ioasid_free(struct ioasid_set *set, ioasid_t ioasid)'),
  free_all: core('ioasid_free_all_in_set', 'void ioasid_free_all_in_set(struct ioasid_set *set)'),
  get_if_owned: core('ioasid_get_if_owned', 'int ioasid_get_if_owned(ioasid_t ioasid)'),
  put: core('ioasid_put', 'bool ioasid_put(struct ioasid_set *set, ioasid_t ioasid)'),
  notify: core('ioasid_notify', 'static int ioasid_notify(ioasid_t id, enum ioasid_notify_val cmd, unsigned int flags)'),
  open: user('ioasid_fops_open', 'static int ioasid_fops_open(struct inode *inode, struct file *filep)'),
  release: user('ioasid_fops_release', 'static int ioasid_fops_release(struct inode *inode, struct file *filep)'),
  ioctl: user('ioasid_fops_unl_ioctl', 'static long ioasid_fops_unl_ioctl(struct file *filep, unsigned int cmd, unsigned long arg)', {
    entry: 'ioctl',
    uapi: { param: 'arg', ctype: 'unsigned long' },
  }),
  get_info: user('ioasid_get_info', 'static int ioasid_get_info(struct ioasid_user *iuser, unsigned long arg)', {
    uapi: { param: 'arg', ctype: 'unsigned long' },
  }),
  alloc_request: user('ioasid_alloc_request', 'static int ioasid_alloc_request(struct ioasid_user *iuser, unsigned long arg)', {
    uapi: { param: 'arg', ctype: 'unsigned long' },
    handler: true,
    op: 'pasid-alloc',
  }),
  free_request: user('ioasid_free_request', 'static int ioasid_free_request(struct ioasid_user *iuser, unsigned long arg)', {
    uapi: { param: 'arg', ctype: 'unsigned long' },
    handler: true,
    op: 'pasid-free',
  }),
  get_from_task: user('ioasid_user_get_from_task', 'struct ioasid_user *ioasid_user_get_from_task(struct task_struct *task)'),
  for_each_id: user('ioasid_user_for_each_id', 'void ioasid_user_for_each_id(struct ioasid_user *iuser, void *data, void (*fn)(ioasid_t id, void *data))'),
  user_put: user('ioasid_user_put', 'void ioasid_user_put(struct ioasid_user *iuser)'),
  init: user('ioasid_user_init', 'static int __init ioasid_user_init(void)'),
};

export const INVALID_IOASID = 0xffff_ffff;
/** ioasid_user.c: "Current user ioasid uapi supports 31 bits" */
export const IOASID_BITS = 31;
export const IOASID_SET_TYPE_MM = 1;

import { IOASID_GET_API_VERSION, IOASID_GET_INFO, IOASID_REQUEST_ALLOC, IOASID_REQUEST_FREE } from '../kernel/uapi/ioctls/ioasid.ts';
import { getI32 } from '../kernel/uapi/le.ts';
export { IOASID_GET_API_VERSION, IOASID_GET_INFO, IOASID_REQUEST_ALLOC, IOASID_REQUEST_FREE };
const IOCTL_NAMES = new Map([
  [IOASID_GET_API_VERSION, 'IOASID_GET_API_VERSION'],
  [IOASID_GET_INFO, 'IOASID_GET_INFO'],
  [IOASID_REQUEST_ALLOC, 'IOASID_REQUEST_ALLOC'],
  [IOASID_REQUEST_FREE, 'IOASID_REQUEST_FREE'],
]);

/** enum ioasid_notify_val: only FREE is delivered in this model */
export const IOASID_NOTIFY_FREE = 1 << 1;

/** struct ioasid_set: the token is the mm_struct that owns the PASIDs */
export interface IoasidSet {
  readonly token: Mm;
  readonly type: number;
  readonly ids: Set<number>;
  readonly alloc: KAlloc;
}

/** struct ioasid_data */
interface IoasidData {
  readonly id: number;
  readonly set: IoasidSet;
  /** the IOMMU driver's private data (VT-d: struct intel_svm) */
  private: unknown;
  refs: number;
  /** freed by its owner while others still held references (IOASID_STATE_FREE_PENDING) */
  free_pending: boolean;
  readonly alloc: KAlloc;
}

/** struct ioasid_user: one per process that opened /dev/ioasid */
export interface IoasidUser {
  kref: number;
  readonly ioasid_set: IoasidSet;
  readonly lock: Mutex;
  /** token.val: the opener's mm pointer */
  readonly token: Mm;
  readonly alloc: KAlloc;
}

/** A FREE notification handler (ioasid_register_notifier(NULL, nb): all sets). */
export type IoasidNotifier = (code: number, id: number, pdata: unknown) => void;

/** The IOASID core's global state and /dev/ioasid's ioasid_user_list. */
export interface IoasidModule {
  readonly k: Kernel;
  readonly xa: XArray<IoasidData>;
  readonly allocator_lock: SpinLock;
  readonly notifiers: IoasidNotifier[];
  readonly user_lock: Mutex;
  readonly users: IoasidUser[];
}

const modules = new WeakMap<Kernel, IoasidModule>();

export function ioasid_module(k: Kernel): IoasidModule {
  let m = modules.get(k);
  if (!m) {
    m = {
      k,
      xa: new XArray<IoasidData>(k, 'ioasid'),
      allocator_lock: new SpinLock(k, 'ioasid_allocator_lock'),
      notifiers: [],
      user_lock: new Mutex(k, 'ioasid_user_lock'),
      users: [],
    };
    modules.set(k, m);
  }
  return m;
}

// ---- the IOASID core ------------------------------------------------------------------------

export function ioasid_set_alloc(k: Kernel, token: Mm, type: number): IoasidSet | number {
  return k.sim.call(FN.set_alloc, () => {
    const alloc = kzalloc(k, 'ioasid_set');
    if (!alloc) return -ENOMEM;
    return { token, type, ids: new Set<number>(), alloc };
  });
}

function ioasid_set_free(k: Kernel, set: IoasidSet): void {
  k.sim.call(FN.set_free, () => kfree(k, set.alloc));
}

/** Lowest free ID in [min, max]; INVALID_IOASID when none is free or memory runs out. */
export function ioasid_alloc(k: Kernel, set: IoasidSet, min: number, max: number, priv: unknown): number {
  const m = ioasid_module(k);
  return k.sim.call(FN.alloc, () => {
    const alloc = kzalloc(k, 'ioasid_data');
    if (!alloc) return INVALID_IOASID;
    spin_lock_irqsave(m.allocator_lock);
    const data: IoasidData = { id: -1, set, private: priv, refs: 1, free_pending: false, alloc };
    const id = m.xa.alloc(data, min, max);
    if (id < 0) {
      spin_unlock_irqrestore(m.allocator_lock);
      kfree(k, alloc);
      return INVALID_IOASID;
    }
    (data as { id: number }).id = id;
    set.ids.add(id);
    spin_unlock_irqrestore(m.allocator_lock);
    return id;
  });
}

function reclaim(k: Kernel, m: IoasidModule, d: IoasidData): void {
  m.xa.erase(d.id);
  kfree(k, d.alloc);
}

/**
 * ioasid_free: the owner gives the ID up. With other references outstanding (an IOMMU binding),
 * the ID becomes FREE_PENDING and the FREE notification asks them to let go (V4 14/18: VT-d
 * tears its PASID entries down); it is reclaimed when the last reference goes.
 */
export function ioasid_free(k: Kernel, set: IoasidSet, id: number): void {
  const m = ioasid_module(k);
  k.sim.call(FN.free, () => {
    spin_lock_irqsave(m.allocator_lock);
    const d = peek(m, id);
    if (!d || d.set !== set || d.free_pending) {
      spin_unlock_irqrestore(m.allocator_lock);
      return;
    }
    set.ids.delete(id);
    if (--d.refs === 0) {
      reclaim(k, m, d);
      spin_unlock_irqrestore(m.allocator_lock);
      return;
    }
    d.free_pending = true;
    spin_unlock_irqrestore(m.allocator_lock);
    ioasid_notify(k, id, IOASID_NOTIFY_FREE, d.private);
  });
}

function ioasid_notify(k: Kernel, id: number, code: number, pdata: unknown): void {
  k.sim.call(FN.notify, () => {
    for (const nb of ioasid_module(k).notifiers) nb(code, id, pdata);
  });
}

export function ioasid_register_notifier(k: Kernel, nb: IoasidNotifier): void {
  ioasid_module(k).notifiers.push(nb);
}

export function ioasid_free_all_in_set(k: Kernel, set: IoasidSet): void {
  k.sim.call(FN.free_all, () => {
    for (const id of [...set.ids]) ioasid_free(k, set, id);
  });
}

/** xa_load under ioasid_allocator_lock: infallible in the kernel, so no fail-nth hook here. */
function peek(m: IoasidModule, id: number): IoasidData | undefined {
  for (const [i, d] of m.xa.entries()) if (i === id) return d;
  return undefined;
}

/** ioasid_find(NULL, id, NULL): the private data of an active ID, or null. */
export function ioasid_find(k: Kernel, id: number): unknown {
  const d = peek(ioasid_module(k), id);
  return d && !d.free_pending ? d.private : null;
}

/** ioasid_attach_data / ioasid_detach_data */
export function ioasid_attach_data(k: Kernel, id: number, data: unknown): void {
  const d = peek(ioasid_module(k), id);
  if (d) d.private = data;
}

export function ioasid_get(k: Kernel, id: number): number {
  const d = peek(ioasid_module(k), id);
  if (!d || d.free_pending) return -ENOENT;
  d.refs++;
  return 0;
}

/** ioasid_put(NULL, id): drops a reference; a FREE_PENDING ID is reclaimed at zero. */
export function ioasid_put(k: Kernel, id: number): boolean {
  const m = ioasid_module(k);
  return k.sim.call(FN.put, () => {
    spin_lock_irqsave(m.allocator_lock);
    const d = peek(m, id);
    let gone = false;
    if (d && --d.refs === 0) {
      reclaim(k, m, d);
      gone = true;
    }
    spin_unlock_irqrestore(m.allocator_lock);
    return gone;
  });
}

/**
 * ioasid_get_if_owned (V4 11/18, <1614463286-97618-12-git-send-email-jacob.jun.pan@linux.intel.com>):
 * the ownership check iommu_uapi_sva_(un)bind_gpasid makes: the ID's set must be an mm set whose
 * token is current->mm. Returns 0 (a reference taken), −ENOENT, −EINVAL or −EPERM.
 */
export function ioasid_get_if_owned(k: Kernel, id: number): number {
  const m = ioasid_module(k);
  return k.sim.call(FN.get_if_owned, () => {
    spin_lock_irqsave(m.allocator_lock);
    let ret = 0;
    // ioasid_find_set: an object lookup
    const d = k.sim.lookupHook('ioasid_find_set') ? undefined : peek(m, id);
    if (!d || d.free_pending) ret = -ENOENT;
    else if (d.set.type !== IOASID_SET_TYPE_MM) ret = -EINVAL;
    else if (k.cur().mm !== d.set.token) ret = -EPERM;
    else d.refs++;
    spin_unlock_irqrestore(m.allocator_lock);
    return ret;
  });
}

/** Live IDs, for tests and the digest's cross-checks. */
export function ioasid_live_ids(k: Kernel): number[] {
  return [...ioasid_module(k).xa.entries()].map(([id]) => id).sort((a, b) => a - b);
}

// ---- /dev/ioasid ------------------------------------------------------------------------------

function ioasid_user_release(k: Kernel, m: IoasidModule, iuser: IoasidUser): void {
  ioasid_free_all_in_set(k, iuser.ioasid_set);
  m.users.splice(m.users.indexOf(iuser), 1);
  ioasid_set_free(k, iuser.ioasid_set);
  kfree(k, iuser.alloc);
}

export function ioasid_user_put(k: Kernel, iuser: IoasidUser): void {
  const m = ioasid_module(k);
  k.sim.call(FN.user_put, () => {
    // kref_put_mutex(&iuser->kref, ioasid_user_release, &ioasid_user_lock)
    mutex_lock(m.user_lock);
    if (--iuser.kref === 0) ioasid_user_release(k, m, iuser);
    mutex_unlock(m.user_lock);
  });
}

/**
 * ioasid_user_get_from_task: the ioasid_user whose token is `task`'s mm, with a reference, or
 * null. v8's detach_group calls it with current: a task of another process finds nothing.
 */
export function ioasid_user_get_from_task(k: Kernel, task: Task): IoasidUser | null {
  const m = ioasid_module(k);
  return k.sim.call(FN.get_from_task, () => {
    mutex_lock(m.user_lock);
    const iuser = m.users.find((u) => u.token === task.mm) ?? null;
    if (iuser) iuser.kref++;
    mutex_unlock(m.user_lock);
    return iuser;
  });
}

/** ioasid_user_for_each_id: fn over every ID in the user's set (ioasid_set_for_each_ioasid). */
export function ioasid_user_for_each_id(k: Kernel, iuser: IoasidUser, fn: (id: number) => void): void {
  k.sim.call(FN.for_each_id, () => {
    mutex_lock(iuser.lock);
    for (const id of [...iuser.ioasid_set.ids]) fn(id);
    mutex_unlock(iuser.lock);
  });
}

function ioasid_fops_open(k: Kernel, file: File): number {
  const m = ioasid_module(k);
  return k.sim.call(FN.open, () => {
    const mm = k.cur().mm;
    mutex_lock(m.user_lock);
    let ret = 0;
    // "Only allow one single open per process"
    if (m.users.some((u) => u.token === mm)) ret = -EBUSY;
    let alloc: KAlloc | null = null;
    if (!ret) {
      alloc = kzalloc(k, 'ioasid_user');
      if (!alloc) ret = -ENOMEM;
    }
    if (!ret) {
      const iset = ioasid_set_alloc(k, mm, IOASID_SET_TYPE_MM);
      if (typeof iset === 'number') {
        kfree(k, alloc);
        ret = iset;
      } else {
        const iuser: IoasidUser = { kref: 1, ioasid_set: iset, lock: new Mutex(k, 'ioasid_user->lock'), token: mm, alloc: alloc! };
        file.private_data = iuser;
        m.users.push(iuser);
      }
    }
    mutex_unlock(m.user_lock);
    return ret;
  });
}

function ioasid_fops_release(k: Kernel, file: File): void {
  k.sim.call(FN.release, () => {
    const iuser = file.private_data as IoasidUser;
    file.private_data = null;
    ioasid_user_put(k, iuser);
  });
}

function ioasid_get_info(k: Kernel, arg: number): number {
  return k.sim.call(FN.get_info, () => {
    const minsz = offsetOfEnd(ioasid_info, 'ioasid_bits');
    const buf = new Uint8Array(minsz);
    if (copy_from_user(k, buf, uptr(arg), minsz)) return -EFAULT;
    const info = decode(ioasid_info, buf);
    k.sim.recorder.validate('ioasid_info', 'ioasid_get_info');
    if ((info.argsz as number) < minsz || info.flags) return -EINVAL;
    info.ioasid_bits = IOASID_BITS;
    return copy_to_user(k, uptr(arg), encode(ioasid_info, info), minsz) ? -EFAULT : 0;
  });
}

function ioasid_alloc_request_fn(k: Kernel, iuser: IoasidUser, arg: number): number {
  return k.sim.call(FN.alloc_request, () => {
    const minsz = offsetOfEnd(ioasid_alloc_request, 'range');
    const buf = new Uint8Array(minsz);
    if (copy_from_user(k, buf, uptr(arg), minsz)) return -EFAULT;
    const req = decode(ioasid_alloc_request, buf);
    const range = req.range as { min: number; max: number };
    k.sim.recorder.validate('ioasid_alloc_request', 'ioasid_alloc_request');
    if ((req.argsz as number) < minsz || req.flags) return -EINVAL;
    if (range.min > range.max || range.min >= 2 ** IOASID_BITS || range.max >= 2 ** IOASID_BITS) return -EINVAL;
    const ioasid = ioasid_alloc(k, iuser.ioasid_set, range.min, range.max, null);
    // the Corrections: -EINVAL, not v7's -ENOSPC, when nothing can be allocated
    if (ioasid === INVALID_IOASID) return -EINVAL;
    return ioasid;
  });
}

function ioasid_free_request_fn(k: Kernel, iuser: IoasidUser, arg: number): number {
  return k.sim.call(FN.free_request, () => {
    const buf = new Uint8Array(4);
    if (copy_from_user(k, buf, uptr(arg), 4)) return -EFAULT;
    const ioasid = getI32(buf, 0);
    if (ioasid < 0) return -EINVAL;
    ioasid_free(k, iuser.ioasid_set, ioasid);
    return 0;
  });
}

function ioasid_fops_unl_ioctl(k: Kernel, file: File, cmd: number, arg: number): number {
  return k.sim.call(FN.ioctl, () => {
    const iuser = file.private_data as IoasidUser | null;
    let ret = -EINVAL;
    if (!iuser) return ret;
    mutex_lock(iuser.lock);
    switch (cmd >>> 0) {
      case IOASID_GET_API_VERSION:
        ret = IOASID_API_VERSION;
        break;
      case IOASID_GET_INFO:
        ret = ioasid_get_info(k, arg);
        break;
      case IOASID_REQUEST_ALLOC:
        ret = ioasid_alloc_request_fn(k, iuser, arg);
        break;
      case IOASID_REQUEST_FREE:
        ret = ioasid_free_request_fn(k, iuser, arg);
        break;
      default:
        // pr_err("Unsupported cmd %u\n"): stays -EINVAL (JGG asked for ENOTTY)
        break;
    }
    mutex_unlock(iuser.lock);
    return ret;
  });
}

export const ioasid_user_fops: FileOperations = {
  type: 'ioasid',
  open: ioasid_fops_open,
  release: ioasid_fops_release,
  unlocked_ioctl: ioasid_fops_unl_ioctl,
  ioctlName: (cmd) => IOCTL_NAMES.get(cmd >>> 0),
};

/** module_init(ioasid_user_init): misc_register of /dev/ioasid. */
export function ioasid_user_init(k: Kernel): IoasidModule {
  return k.sim.call(FN.init, () => {
    const m = ioasid_module(k);
    k.devfs.register('/dev/ioasid', ioasid_user_fops, m);
    return m;
  });
}

