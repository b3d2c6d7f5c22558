import { P, kfn, type KFn } from '../../sim/index.ts';
import { EAGAIN, EBADF, EFAULT, EINVAL, ENOMEM } from './errno.ts';
import { File, fput, get_file, type FileOperations } from './files.ts';
import type { Kernel } from './kernel.ts';
import { kfree, kzalloc, type KAlloc } from './slab.ts';
import { copy_from_user, copy_to_user } from './uaccess.ts';

/**
 * eventfd (fs/eventfd.c), reduced to what the modelled subsystems use: a 64-bit counter that
 * eventfd_signal adds to and a read returns and clears; poll reports EPOLLIN while it is non-zero.
 * Subsystems keep a reference with eventfd_ctx_fdget (the VFIO device-specific IRQ trigger).
 */
const SRC: KFn['prov'] = { kind: 'merged', source: 'fs/eventfd.c' };
const fn = (name: string, sig: string): KFn => kfn({ name, layer: 'eventfd', sig, prov: SRC });
const FN = {
  signal: fn('eventfd_signal', '__u64 eventfd_signal(struct eventfd_ctx *ctx, __u64 n)'),
  read: fn('eventfd_read', 'static ssize_t eventfd_read(struct kiocb *iocb, struct iov_iter *to)'),
  write: fn('eventfd_write', 'static ssize_t eventfd_write(struct file *file, const char __user *buf, size_t count, loff_t *ppos)'),
  release: fn('eventfd_release', 'static int eventfd_release(struct inode *inode, struct file *file)'),
};

/** EFD_SEMAPHORE | EFD_CLOEXEC | EFD_NONBLOCK; the model's reads never block (EAGAIN at 0) */
export const EFD_FLAGS_SET = 1 | 0o2000000 | 0o4000;
const EPOLLIN = 0x001;
const EPOLLOUT = 0x004;

/** struct eventfd_ctx */
export interface EventfdCtx {
  count: bigint;
  /** signals since creation, for tests */
  signals: number;
  readonly file: File;
  readonly alloc: KAlloc;
}

const fops: FileOperations = {
  type: 'eventfd',
  read(k, file, buf, count) {
    return k.sim.call(FN.read, () => {
      const ctx = file.private_data as EventfdCtx;
      if (count < 8) return -EINVAL;
      if (ctx.count === 0n) return -EAGAIN;
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigUint64(0, ctx.count, true);
      if (copy_to_user(k, buf, b, 8)) return -EFAULT;
      ctx.count = 0n;
      return 8;
    });
  },
  write(k, file, buf, count) {
    return k.sim.call(FN.write, () => {
      const ctx = file.private_data as EventfdCtx;
      if (count < 8) return -EINVAL;
      const b = new Uint8Array(8);
      if (copy_from_user(k, b, buf, 8)) return -EFAULT;
      ctx.count += new DataView(b.buffer).getBigUint64(0, true);
      return 8;
    });
  },
  poll(_k, file) {
    return ((file.private_data as EventfdCtx).count > 0n ? EPOLLIN : 0) | EPOLLOUT;
  },
  release(k, file) {
    k.sim.call(FN.release, () => kfree(k, (file.private_data as EventfdCtx).alloc));
  },
};

/** The file of a new eventfd (the syscall installs it), or −ENOMEM. */
export function eventfd_file(k: Kernel, initval: number): File | number {
  const alloc = kzalloc(k, 'eventfd_ctx');
  if (!alloc) return -ENOMEM;
  const falloc = kzalloc(k, 'struct file');
  if (!falloc) {
    kfree(k, alloc);
    return -ENOMEM;
  }
  const file = new File(fops, 'anon_inode:[eventfd]', falloc);
  file.private_data = { count: BigInt(initval), signals: 0, file, alloc } satisfies EventfdCtx;
  return file;
}

/**
 * eventfd_ctx_fdget: the context behind `fd` of the current task, with a file reference the
 * caller drops through eventfd_ctx_put; −EBADF / −EINVAL for a bad or non-eventfd fd.
 */
export function eventfd_ctx_fdget(k: Kernel, fd: number): EventfdCtx | number {
  const file = k.cur().process.files.get(fd);
  if (!file) return -EBADF;
  if (file.f_op !== fops) return -EINVAL;
  get_file(file);
  return file.private_data as EventfdCtx;
}

export function eventfd_ctx_put(k: Kernel, ctx: EventfdCtx): void {
  fput(k, ctx.file);
}

/** eventfd_signal: adds `n` and wakes a waiter (priced as a cross-thread wake-up). */
export function eventfd_signal(k: Kernel, ctx: EventfdCtx, n = 1): void {
  k.sim.call(FN.signal, () => {
    k.sim.charge(P.eventfdWake);
    ctx.count += BigInt(n);
    ctx.signals++;
  });
}
