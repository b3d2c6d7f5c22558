import { kfn, type KFn } from '../../sim/index.ts';
import { EFAULT, EINVAL, ENOMEM, EOPNOTSUPP, ESPIPE, IS_ERR, PTR_ERR, type ErrPtr } from '../kernel/errno.ts';
import { File, fput, type FileOperations } from '../kernel/files.ts';
import type { Kernel } from '../kernel/kernel.ts';
import { Mutex, SpinLock, mutex_lock, mutex_unlock, spin_lock_irqsave, spin_unlock_irqrestore } from '../kernel/locks.ts';
import { uptr, type UserPtr } from '../kernel/mm.ts';
import { kzalloc } from '../kernel/slab.ts';
import { copy_from_user, copy_to_user } from '../kernel/uaccess.ts';
import {
  IOMMUFD_PAGE_RESP_INVALID,
  IOMMUFD_PAGE_RESP_SUCCESS,
  decode,
  encode,
  iommu_hwpt_page_response,
  iommu_hwpt_pgfault,
  sizeOf,
} from '../kernel/uapi/index.ts';
import { XArray } from '../kernel/xarray.ts';
import { IOMMU_PAGE_RESP_INVALID, type IopfFault, type IopfGroup } from '../iommu/types.ts';
import type { IommufdDevice } from './device.ts';
import type { IommufdHwPagetable } from './hw_pagetable.ts';
import {
  iommufd_get_object,
  iommufd_object_abort_and_destroy,
  iommufd_object_alloc,
  iommufd_object_finalize,
  iommufd_register_object_ops,
  iommufd_ucmd_respond,
  u32,
  type IommufdCtx,
  type IommufdObject,
  type IommufdUcmd,
} from './iommufd_private.ts';

/**
 * The IOPF fault queue (drivers/iommu/iommufd/eventq.c @ v6.15; fault.c until 6.13): a FAULT
 * object with an anon-inode fd. An HWPT allocated with FAULT_ID_VALID routes its domain's page
 * requests here (iommufd_fault_iopf_handler); userspace read()s whole groups as 40-byte
 * iommu_hwpt_pgfault records, each group under a cookie, and write()s 8-byte
 * iommu_hwpt_page_response records that answer them (iopf_group_response). Groups still pending
 * when their attachment goes are answered INVALID (iommufd_auto_response_faults).
 * Read at torvalds/linux eventq.c @ 0507f337 (still iommu_dev_enable_feature(IOPF): pre-6.16).
 */
const SRC = 'drivers/iommu/iommufd/eventq.c @ v6.15';
const fn = (name: string, sig: string, extra: Partial<KFn> = {}): KFn =>
  kfn({ name, layer: 'iommufd', sig, prov: { kind: 'merged', source: SRC }, ...extra });

const FN = {
  iopf_enable: fn('iommufd_fault_iopf_enable', 'int iommufd_fault_iopf_enable(struct iommufd_device *idev)'),
  iopf_disable: fn('iommufd_fault_iopf_disable', 'void iommufd_fault_iopf_disable(struct iommufd_device *idev)'),
  auto_response: fn('iommufd_auto_response_faults', 'void iommufd_auto_response_faults(struct iommufd_hw_pagetable *hwpt, struct iommufd_attach_handle *handle)'),
  destroy: fn('iommufd_fault_destroy', 'void iommufd_fault_destroy(struct iommufd_object *obj)'),
  read: fn('iommufd_fault_fops_read', 'static ssize_t iommufd_fault_fops_read(struct file *filep, char __user *buf, size_t count, loff_t *ppos)', {
    handler: true,
    op: 'fault',
  }),
  write: fn('iommufd_fault_fops_write', 'static ssize_t iommufd_fault_fops_write(struct file *filep, const char __user *buf, size_t count, loff_t *ppos)', {
    handler: true,
    op: 'page-response',
  }),
  poll: fn('iommufd_eventq_fops_poll', 'static __poll_t iommufd_eventq_fops_poll(struct file *filep, struct poll_table_struct *wait)'),
  release: fn('iommufd_eventq_fops_release', 'static int iommufd_eventq_fops_release(struct inode *inode, struct file *filep)'),
  eventq_init: fn('iommufd_eventq_init', 'static int iommufd_eventq_init(struct iommufd_eventq *eventq, char *name, struct iommufd_ctx *ictx, const struct file_operations *fops)'),
  alloc: fn('iommufd_fault_alloc', 'int iommufd_fault_alloc(struct iommufd_ucmd *ucmd)', {
    uapi: { param: 'ucmd->cmd', ctype: 'struct iommu_fault_alloc *' },
    handler: true,
    op: 'fault-queue',
  }),
  handler: fn('iommufd_fault_iopf_handler', 'int iommufd_fault_iopf_handler(struct iopf_group *group)'),
};

/** EPOLLIN | EPOLLRDNORM, EPOLLOUT (include/uapi/linux/eventpoll.h) */
export const EPOLLIN = 0x001;
export const EPOLLOUT = 0x004;
export const EPOLLRDNORM = 0x040;

/** struct iommufd_fault (its struct iommufd_eventq common part folded in) */
export interface IommufdFault extends IommufdObject {
  readonly type: 'FAULT';
  /** eventq->filep: the "[iommufd-pgfault]" anon file; null until iommufd_eventq_init */
  filep: File | null;
  /** eventq->deliver: groups the handler queued, not yet read */
  readonly deliver: IopfGroup[];
  /** eventq->lock, guarding deliver */
  readonly lock: SpinLock;
  /** fault->response: groups read by userspace, by cookie (XA_FLAGS_ALLOC1, xa_limit_32b) */
  readonly response: XArray<IopfGroup>;
  /** fault->mutex: serialises read, write and the auto-responses */
  readonly mutex: Mutex;
  /** wake_up_interruptible(&eventq->wait_queue) calls: what a poller would have seen */
  wakeups: number;
}

const FAULT_SIZE = sizeOf(iommu_hwpt_pgfault);
const RESPONSE_SIZE = sizeOf(iommu_hwpt_page_response);

/** The idev iommufd attached the group's domain for: the handle carries it. */
function handle_idev(group: IopfGroup): IommufdDevice {
  return (group.attach_handle as unknown as { idev: IommufdDevice }).idev;
}

function iopf(ictx: IommufdCtx) {
  return ictx.mod.iopf;
}

// ---- IOPF enable on attach (device.ts calls these) -----------------------------------------------

/**
 * iommufd_fault_iopf_enable: a VF with PRI is refused (PRI is shared with the PF, and a failure
 * response must not reach it); the first fault-capable attachment of the device turns IOPF on
 * (iommu_dev_enable_feature(IOMMU_DEV_FEAT_IOPF) → the driver's enable), later ones only count.
 */
export function iommufd_fault_iopf_enable(idev: IommufdDevice): number {
  const k = idev.ictx.k;
  return k.sim.call(FN.iopf_enable, () => {
    const dev = idev.dev;
    if (dev.caps.isVirtfn && dev.caps.pri) return -EINVAL;
    mutex_lock(idev.iopf_lock);
    if (++idev.iopf_enabled > 1) {
      mutex_unlock(idev.iopf_lock);
      return 0;
    }
    const ops = idev.ictx.mod.core.dev_iommu(dev)?.ops;
    const ret = ops?.enable_iopf ? ops.enable_iopf(dev) : -EOPNOTSUPP;
    if (ret) --idev.iopf_enabled;
    mutex_unlock(idev.iopf_lock);
    return ret;
  });
}

export function iommufd_fault_iopf_disable(idev: IommufdDevice): void {
  const k = idev.ictx.k;
  k.sim.call(FN.iopf_disable, () => {
    mutex_lock(idev.iopf_lock);
    if (idev.iopf_enabled === 0) k.sim.oops('iommufd_fault_iopf_disable: not enabled'); // WARN_ON
    if (--idev.iopf_enabled === 0) idev.ictx.mod.core.dev_iommu(idev.dev)?.ops.disable_iopf?.(idev.dev);
    mutex_unlock(idev.iopf_lock);
  });
}

/**
 * iommufd_auto_response_faults: every group of `handle` still queued or read-but-unanswered is
 * answered INVALID and freed. 6.15 reads the queue of `hwpt` (on replace: the new HWPT), so a
 * replace onto an HWPT with another FAULT object leaves the old groups pending; a VMM keeps one
 * fault queue per device, so both HWPTs share it.
 */
export function iommufd_auto_response_faults(hwpt: IommufdHwPagetable, handle: unknown): void {
  const fault = hwpt.fault as IommufdFault | null;
  if (!fault) return;
  const k = hwpt.ictx.k;
  k.sim.call(FN.auto_response, () => {
    const io = iopf(hwpt.ictx);
    mutex_lock(fault.mutex);
    spin_lock_irqsave(fault.lock);
    const free_list: IopfGroup[] = [];
    for (let i = 0; i < fault.deliver.length; ) {
      if (fault.deliver[i]!.attach_handle === handle) free_list.push(...fault.deliver.splice(i, 1));
      else i++;
    }
    spin_unlock_irqrestore(fault.lock);
    for (const group of free_list) {
      io.iopf_group_response(group, IOMMU_PAGE_RESP_INVALID);
      io.iopf_free_group(group);
    }
    for (const [index, group] of [...fault.response.entries()]) {
      if (group.attach_handle !== handle) continue;
      fault.response.erase(index);
      io.iopf_group_response(group, IOMMU_PAGE_RESP_INVALID);
      io.iopf_free_group(group);
    }
    mutex_unlock(fault.mutex);
  });
}

// ---- the object -----------------------------------------------------------------------------------

/** The object's users are all gone (the fd's reference too): answer whatever is left. */
function iommufd_fault_destroy(obj: IommufdObject): void {
  const fault = obj as IommufdFault;
  obj.ictx.k.sim.call(FN.destroy, () => {
    const io = iopf(obj.ictx);
    for (const group of fault.deliver.splice(0)) {
      io.iopf_group_response(group, IOMMU_PAGE_RESP_INVALID);
      io.iopf_free_group(group);
    }
    for (const [index, group] of [...fault.response.entries()]) {
      fault.response.erase(index);
      io.iopf_group_response(group, IOMMU_PAGE_RESP_INVALID);
      io.iopf_free_group(group);
    }
  });
}

iommufd_register_object_ops('FAULT', { destroy: iommufd_fault_destroy });

/** iommufd_get_fault (iommufd_private.h) */
export function iommufd_get_fault(ucmd: IommufdUcmd, id: number): IommufdFault | ErrPtr {
  const obj = iommufd_get_object(ucmd.ictx, id, 'FAULT');
  return IS_ERR(obj) ? obj : (obj as IommufdFault);
}

/** iommufd_compose_fault_message */
function compose(evt: IopfFault, idev: IommufdDevice, cookie: number): Uint8Array {
  return encode(iommu_hwpt_pgfault, {
    flags: evt.flags,
    dev_id: idev.id,
    pasid: evt.pasid,
    grpid: evt.grpid,
    perm: evt.perm,
    __reserved: 0,
    addr: BigInt(evt.addr),
    length: 0,
    cookie,
  });
}

/**
 * read(): whole groups only, as many as fit; each gets a cookie (≥ 1) in fault->response and one
 * 40-byte record per fault. A count that is not a multiple of 40 is ESPIPE. Never blocks: with
 * nothing queued it returns 0.
 */
function iommufd_fault_fops_read(k: Kernel, file: File, buf: UserPtr, count: number): number {
  return k.sim.call(FN.read, () => {
    const fault = file.private_data as IommufdFault;
    // *ppos is always 0: the file is nonseekable and pread is not modelled
    if (count % FAULT_SIZE) return -ESPIPE;
    let done = 0;
    let rc = 0;
    mutex_lock(fault.mutex);
    for (;;) {
      // iommufd_fault_deliver_fetch
      spin_lock_irqsave(fault.lock);
      const group = fault.deliver.shift();
      spin_unlock_irqrestore(fault.lock);
      if (!group) break;
      const restore = () => {
        spin_lock_irqsave(fault.lock);
        fault.deliver.unshift(group);
        spin_unlock_irqrestore(fault.lock);
      };
      if (done >= count || group.faults.length * FAULT_SIZE > count - done) {
        restore();
        break;
      }
      const cookie = fault.response.alloc(group, 1, 0xffff_ffff);
      if (cookie < 0) {
        rc = cookie;
        restore();
        break;
      }
      group.cookie = cookie;
      const idev = handle_idev(group);
      for (const evt of group.faults) {
        if (copy_to_user(k, uptr(buf + done), compose(evt, idev, cookie), FAULT_SIZE)) {
          fault.response.erase(cookie);
          restore();
          rc = -EFAULT;
          break;
        }
        done += FAULT_SIZE;
      }
      if (rc) break;
    }
    mutex_unlock(fault.mutex);
    return done === 0 ? rc : done;
  });
}

/**
 * write(): 8-byte responses; a code other than SUCCESS or INVALID, or a cookie no read handed
 * out, is EINVAL; each answered group goes to iopf_group_response (the driver's page response).
 */
function iommufd_fault_fops_write(k: Kernel, file: File, buf: UserPtr, count: number): number {
  return k.sim.call(FN.write, () => {
    const fault = file.private_data as IommufdFault;
    if (count % RESPONSE_SIZE) return -ESPIPE;
    const io = iopf(fault.ictx);
    let done = 0;
    let rc = 0;
    mutex_lock(fault.mutex);
    while (count > done) {
      const raw = new Uint8Array(RESPONSE_SIZE);
      if (copy_from_user(k, raw, uptr(buf + done), RESPONSE_SIZE)) {
        rc = -EFAULT;
        break;
      }
      const response = decode(iommu_hwpt_page_response, raw);
      k.sim.recorder.validate('iommu_hwpt_page_response', 'iommufd_fault_fops_write');
      const code = response.code as number;
      if (code !== IOMMUFD_PAGE_RESP_SUCCESS && code !== IOMMUFD_PAGE_RESP_INVALID) {
        rc = -EINVAL;
        break;
      }
      const group = fault.response.erase(response.cookie as number);
      if (!group) {
        rc = -EINVAL;
        break;
      }
      io.iopf_group_response(group, code);
      io.iopf_free_group(group);
      done += RESPONSE_SIZE;
    }
    mutex_unlock(fault.mutex);
    return done === 0 ? rc : done;
  });
}

function iommufd_eventq_fops_poll(k: Kernel, file: File): number {
  return k.sim.call(FN.poll, () => {
    const fault = file.private_data as IommufdFault;
    let pollflags = EPOLLOUT;
    spin_lock_irqsave(fault.lock);
    if (fault.deliver.length) pollflags |= EPOLLIN | EPOLLRDNORM;
    spin_unlock_irqrestore(fault.lock);
    return pollflags;
  });
}

/** The fd held a `users` on the object and a reference on the ictx. */
function iommufd_eventq_fops_release(k: Kernel, file: File): void {
  k.sim.call(FN.release, () => {
    const fault = file.private_data as IommufdFault;
    fault.users--; // refcount_dec
    fput(k, fault.ictx.file); // iommufd_ctx_put
  });
}

/** INIT_EVENTQ_FOPS(iommufd_fault_fops_read, iommufd_fault_fops_write) */
export const iommufd_fault_fops: FileOperations = {
  type: 'iommufd-pgfault',
  read: iommufd_fault_fops_read,
  write: iommufd_fault_fops_write,
  poll: iommufd_eventq_fops_poll,
  release: iommufd_eventq_fops_release,
};

/** anon_inode_getfile + get_unused_fd_flags: the file, holding the object and the ictx. */
function iommufd_eventq_init(fault: IommufdFault, name: string, ictx: IommufdCtx): number {
  const k = ictx.k;
  return k.sim.call(FN.eventq_init, () => {
    const alloc = kzalloc(k, 'struct file');
    if (!alloc) return -ENOMEM;
    const filep = new File(iommufd_fault_fops, name, alloc);
    filep.private_data = fault;
    filep.opened = true;
    fault.filep = filep;
    ictx.file.f_count++; // iommufd_ctx_get
    fault.users++; // refcount_inc(&eventq->obj.users)
    // get_unused_fd_flags(O_CLOEXEC): the fd number is reserved now, the file installed at the end
    if (k.sim.allocHook('get_unused_fd_flags')) {
      fput(k, filep);
      fault.filep = null;
      return -ENOMEM;
    }
    return 0;
  });
}

/**
 * IOMMU_FAULT_QUEUE_ALLOC: the FAULT object and its fd; out_fault_id and out_fault_fd are copied
 * back before the object is published and the fd installed (fd_install), as the kernel orders it.
 */
export function iommufd_fault_alloc(ucmd: IommufdUcmd): number {
  const { ictx, cmd } = ucmd;
  const k = ictx.k;
  return k.sim.call(FN.alloc, () => {
    if (u32(cmd, 'flags')) return -EOPNOTSUPP;
    const fault = iommufd_object_alloc<IommufdFault>(ictx, 'FAULT', () => ({
      type: 'FAULT' as const,
      filep: null,
      deliver: [],
      lock: new SpinLock(k, 'fault->common.lock'),
      response: new XArray<IopfGroup>(k, 'fault->response'),
      mutex: new Mutex(k, 'fault->mutex'),
      wakeups: 0,
    }));
    if (IS_ERR(fault)) return PTR_ERR(fault);
    let rc = iommufd_eventq_init(fault, '[iommufd-pgfault]', ictx);
    if (rc) {
      iommufd_object_abort_and_destroy(ictx, fault);
      return rc;
    }
    const task = k.cur();
    // the number get_unused_fd_flags reserved: the lowest free one, which fd_install fills
    const fdno = task.process.files.openFds().reduce((free, fd) => (fd === free ? free + 1 : free), 0);
    cmd.out_fault_id = fault.id;
    cmd.out_fault_fd = fdno;
    rc = iommufd_ucmd_respond(ucmd, sizeOf(ucmd.decl));
    if (rc) {
      fput(k, fault.filep!); // put_unused_fd + fput: the release drops the refs eventq_init took
      iommufd_object_abort_and_destroy(ictx, fault);
      return rc;
    }
    iommufd_object_finalize(ictx, fault);
    const fd = task.process.files.install(fault.filep!, task.process.comm); // fd_install
    if (fd !== fdno) k.sim.oops(`iommufd_fault_alloc: installed fd ${fd}, reported ${fdno}`);
    return 0;
  });
}

/**
 * The domain's iopf_handler (set by IOMMU_HWPT_ALLOC with FAULT_ID_VALID): queue the group on
 * the HWPT's fault queue and wake readers. The group stays pending at io-pgfault until answered.
 */
export function iommufd_fault_iopf_handler(hwpt: IommufdHwPagetable, group: IopfGroup): number {
  const k = hwpt.ictx.k;
  return k.sim.call(FN.handler, () => {
    const fault = hwpt.fault as IommufdFault;
    spin_lock_irqsave(fault.lock);
    fault.deliver.push(group);
    spin_unlock_irqrestore(fault.lock);
    fault.wakeups++; // wake_up_interruptible
    return 0;
  });
}
