import { P, kfn, type KFn } from '../../sim/index.ts';
import { EBADF, EINVAL, ENOENT, ENOMEM, ENOTTY, errname } from './errno.ts';
import { EFD_FLAGS_SET, eventfd_file } from './eventfd.ts';
import { File, fput, get_file } from './files.ts';
import { hexCmd } from './ioctl.ts';
import type { Kernel } from './kernel.ts';
import type { UserPtr } from './mm.ts';
import type { Task } from './process.ts';
import { kzalloc } from './slab.ts';

/**
 * The syscall boundary: what a userspace program (the VMM) may call. Each call charges the syscall
 * primitive, runs in a span marked as the syscall frame (userPtrDepth is measured from it), sets
 * `current`, and returns −1 with `task.errno` set on failure, as the real syscall seen through libc
 * does. An oops in model code propagates: it is never turned into an errno.
 */
const merged = (source: string) => ({ kind: 'merged', source }) as const;
const sys = (name: string, sig: string, source: string): KFn =>
  kfn({ name, layer: 'syscall', sig, prov: merged(source), entry: 'syscall' });

const FN_IOCTL = sys('__x64_sys_ioctl', 'long sys_ioctl(unsigned int fd, unsigned int cmd, unsigned long arg)', 'fs/ioctl.c');
const FN_VFS_IOCTL = kfn({
  name: 'vfs_ioctl',
  layer: 'vfs',
  sig: 'long vfs_ioctl(struct file *filp, unsigned int cmd, unsigned long arg)',
  prov: merged('fs/ioctl.c'),
  uapi: { param: 'arg', ctype: 'unsigned long' },
});
const FN_OPENAT = sys('__x64_sys_openat', 'long sys_openat(int dfd, const char __user *filename, int flags, umode_t mode)', 'fs/open.c');
const FN_CHRDEV_OPEN = kfn({ name: 'chrdev_open', layer: 'vfs', sig: 'static int chrdev_open(struct inode *inode, struct file *filp)', prov: merged('fs/char_dev.c') });
const FN_CLOSE = sys('__x64_sys_close', 'long sys_close(unsigned int fd)', 'fs/open.c');
const FN_FPUT = kfn({ name: '__fput', layer: 'vfs', sig: 'static void __fput(struct file *file)', prov: merged('fs/file_table.c') });
const FN_READ = sys('__x64_sys_read', 'long sys_read(unsigned int fd, char __user *buf, size_t count)', 'fs/read_write.c');
const FN_WRITE = sys('__x64_sys_write', 'long sys_write(unsigned int fd, const char __user *buf, size_t count)', 'fs/read_write.c');
const FN_PREAD = sys('__x64_sys_pread64', 'long sys_pread64(unsigned int fd, char __user *buf, size_t count, loff_t pos)', 'fs/read_write.c');
const FN_PWRITE = sys('__x64_sys_pwrite64', 'long sys_pwrite64(unsigned int fd, const char __user *buf, size_t count, loff_t pos)', 'fs/read_write.c');
const FN_EVENTFD = sys('__x64_sys_eventfd2', 'long sys_eventfd2(unsigned int count, int flags)', 'fs/eventfd.c');
const FN_POLL = sys('__x64_sys_ppoll', 'long sys_ppoll(struct pollfd __user *ufds, unsigned int nfds, …)', 'fs/select.c');
const FN_SENDMSG = sys('__x64_sys_sendmsg', 'long sys_sendmsg(int fd, struct user_msghdr __user *msg, unsigned int flags)', 'net/socket.c');

export class Syscalls {
  constructor(readonly k: Kernel) {}

  /** Runs a syscall body as `task`, returning its result in the userspace convention. */
  private enter(task: Task, fn: KFn, body: () => number, note?: string): number {
    const k = this.k;
    const prev = k.current;
    k.current = task;
    try {
      const ret = k.sim.call(
        fn,
        () => {
          k.sim.charge(P.syscall);
          k.sim.recorder.syscall();
          return body();
        },
        undefined,
        note,
      );
      if (ret < 0) {
        task.errno = -ret;
        return -1;
      }
      return ret;
    } finally {
      k.current = prev;
    }
  }

  /** open(2) of a char device by path; returns the fd. */
  open(task: Task, path: string): number {
    return this.enter(
      task,
      FN_OPENAT,
      () => {
        const node = this.k.devfs.lookup(path);
        if (!node) return -ENOENT;
        const alloc = kzalloc(this.k, 'struct file');
        if (!alloc) return -ENOMEM;
        const file = new File(node.fops, path, alloc);
        file.private_data = node.data;
        const ret = this.k.sim.call(FN_CHRDEV_OPEN, () => node.fops.open?.(this.k, file) ?? 0);
        if (ret < 0) {
          fput(this.k, file);
          return ret;
        }
        file.opened = true;
        return task.process.files.install(file, task.process.comm);
      },
      path,
    );
  }

  /** Installs a file a subsystem created (an anon inode: a fault fd, an eventfd) in `task`. */
  installFile(task: Task, file: File): number {
    file.opened = true;
    return task.process.files.install(file, task.process.comm);
  }

  close(task: Task, fd: number): number {
    return this.enter(task, FN_CLOSE, () => {
      const file = task.process.files.remove(fd);
      if (!file) return -EBADF;
      this.k.sim.call(FN_FPUT, () => fput(this.k, file));
      return 0;
    });
  }

  ioctl(task: Task, fd: number, cmd: number, arg: number): number {
    const k = this.k;
    const file = task.process.files.get(fd);
    const name = (file && file.f_op.ioctlName?.(cmd, file)) ?? hexCmd(cmd);
    k.sim.recorder.beginIoctl(name, file?.f_op.type ?? '(bad fd)');
    let ret = 0;
    try {
      ret = this.enter(
        task,
        FN_IOCTL,
        () => {
          if (!file) return -EBADF;
          k.sim.charge(P.ioctlDispatch);
          const ioctl = file.f_op.unlocked_ioctl;
          if (!ioctl) return -ENOTTY;
          return k.sim.call(FN_VFS_IOCTL, () => ioctl(k, file, cmd, arg));
        },
        name,
      );
      return ret;
    } finally {
      k.sim.recorder.endIoctl(ret < 0 ? -task.errno : ret);
    }
  }

  read(task: Task, fd: number, buf: UserPtr, count: number): number {
    return this.enter(task, FN_READ, () => {
      const file = task.process.files.get(fd);
      if (!file) return -EBADF;
      return file.f_op.read ? file.f_op.read(this.k, file, buf, count) : -EINVAL;
    });
  }

  write(task: Task, fd: number, buf: UserPtr, count: number): number {
    return this.enter(task, FN_WRITE, () => {
      const file = task.process.files.get(fd);
      if (!file) return -EBADF;
      return file.f_op.write ? file.f_op.write(this.k, file, buf, count) : -EINVAL;
    });
  }

  /** pread(2): a read at `pos` (vfio device regions live at fixed offsets of the device fd). */
  pread(task: Task, fd: number, buf: UserPtr, count: number, pos: number): number {
    return this.enter(task, FN_PREAD, () => {
      const file = task.process.files.get(fd);
      if (!file) return -EBADF;
      if (pos < 0) return -EINVAL;
      return file.f_op.read ? file.f_op.read(this.k, file, buf, count, pos) : -EINVAL;
    });
  }

  /** pwrite(2): a write at `pos`. */
  pwrite(task: Task, fd: number, buf: UserPtr, count: number, pos: number): number {
    return this.enter(task, FN_PWRITE, () => {
      const file = task.process.files.get(fd);
      if (!file) return -EBADF;
      if (pos < 0) return -EINVAL;
      return file.f_op.write ? file.f_op.write(this.k, file, buf, count, pos) : -EINVAL;
    });
  }

  /** eventfd2(2): a new eventfd (fs/eventfd.c) with counter `initval`; returns its fd. */
  eventfd(task: Task, initval = 0, flags = 0): number {
    return this.enter(task, FN_EVENTFD, () => {
      if (flags & ~EFD_FLAGS_SET) return -EINVAL;
      const file = eventfd_file(this.k, initval);
      if (typeof file === 'number') return file;
      return this.installFile(task, file);
    });
  }

  /** poll(2) on one fd; returns the ready mask. */
  poll(task: Task, fd: number): number {
    return this.enter(task, FN_POLL, () => {
      const file = task.process.files.get(fd);
      if (!file) return -EBADF;
      return file.f_op.poll ? file.f_op.poll(this.k, file) : 0;
    });
  }

  /**
   * Hands fd `fd` of `from` to process `to` (SCM_RIGHTS over a unix socket), returning the new fd
   * in `to`. Both processes then share one struct file; the last close releases it.
   */
  passFd(from: Task, fd: number, to: Task): number {
    const r = this.enter(from, FN_SENDMSG, () => {
      const file = from.process.files.get(fd);
      if (!file) return -EBADF;
      return to.process.files.install(get_file(file), to.process.comm);
    });
    if (r < 0) to.errno = from.errno;
    return r;
  }

  /** "EBADF" etc. for the task's last error */
  strerror(task: Task): string {
    return errname(task.errno);
  }
}
