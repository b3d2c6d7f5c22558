/**
 * Userspace plumbing for design B's backend: a scratch arena in the VMM task's memory where every
 * uAPI struct is encoded with the codec before its syscall (as QEMU builds them on its stack), and
 * thin wrappers that return rc/errno like libc. No kernel object is touched: only syscalls.
 */
import { IS_ERR } from '../kernel/errno.ts';
import { uptr, type UserPtr } from '../kernel/mm.ts';
import type { Task } from '../kernel/process.ts';
import type { Syscalls } from '../kernel/syscalls.ts';
import { decode, encode, sizeOf, type StructDecl, type UapiInput, type UapiObject } from '../kernel/uapi/index.ts';

const ARENA = 64 * 1024;

export interface SysResult {
  readonly rc: number;
  /** task.errno when rc < 0, else 0 */
  readonly errno: number;
}

export interface IoctlOut extends SysResult {
  /** the struct as userspace reads it back after the call */
  readonly out: UapiObject;
}

export class UserCalls {
  private base: UserPtr | null = null;
  private next = 0;

  constructor(
    readonly sys: Syscalls,
    readonly task: Task,
  ) {}

  /** A fresh arena per intent: structs of one intent never overlap. */
  reset(): void {
    this.next = 0;
  }

  /** Userspace writes its own memory (no syscall). */
  putBytes(bytes: Uint8Array, align = 8): UserPtr {
    if (this.base === null) {
      const at = this.task.mm.mmap(ARENA, `${this.task.process.comm}:iommufd-backend`);
      if (IS_ERR(at)) throw new Error('backend arena: mmap failed');
      this.base = at;
    }
    this.next = Math.ceil(this.next / align) * align;
    if (this.next + bytes.length > ARENA) this.next = 0; // a ring: an intent uses a few hundred bytes
    const at = uptr(this.base + this.next);
    this.next += Math.max(bytes.length, 1);
    if (this.task.mm.access(at, bytes, 0, bytes.length, true)) throw new Error('backend arena: write failed');
    return at;
  }

  put(decl: StructDecl, value: UapiInput): UserPtr {
    return this.putBytes(encode(decl, value));
  }

  read(at: number, len: number): Uint8Array {
    const b = new Uint8Array(len);
    if (this.task.mm.access(at, b, 0, len, false)) throw new Error('backend arena: read failed');
    return b;
  }

  private res(rc: number): SysResult {
    return { rc, errno: rc < 0 ? this.task.errno : 0 };
  }

  /** ioctl(fd, cmd, &s) with `s` encoded in the arena; `sizeField` fills a leading size/argsz. */
  ioctl(fd: number, cmd: number, decl: StructDecl, value: UapiInput, sizeField?: 'size' | 'argsz'): IoctlOut {
    // the size member first, as a C initialiser would put it (and no `{...o, x}`: slow on Node 20)
    const v = sizeField ? { [sizeField]: sizeOf(decl), ...value } : value;
    const at = this.put(decl, v);
    const rc = this.sys.ioctl(this.task, fd, cmd, at);
    return { rc, errno: rc < 0 ? this.task.errno : 0, out: decode(decl, this.read(at, sizeOf(decl))) };
  }

  /** ioctl with a plain argument (a number or a pointer the caller built). */
  ioctlArg(fd: number, cmd: number, arg: number): SysResult {
    return this.res(this.sys.ioctl(this.task, fd, cmd, arg));
  }

  open(path: string): SysResult {
    return this.res(this.sys.open(this.task, path));
  }

  close(fd: number, task: Task = this.task): SysResult {
    const rc = this.sys.close(task, fd);
    return { rc, errno: rc < 0 ? task.errno : 0 };
  }

  readInto(fd: number, len: number): { rc: number; errno: number; bytes: Uint8Array } {
    const at = this.putBytes(new Uint8Array(len));
    const rc = this.sys.read(this.task, fd, at, len);
    return { rc, errno: rc < 0 ? this.task.errno : 0, bytes: rc > 0 ? this.read(at, rc) : new Uint8Array(0) };
  }

  write(fd: number, bytes: Uint8Array): SysResult {
    const at = this.putBytes(bytes);
    return this.res(this.sys.write(this.task, fd, at, bytes.length));
  }
}
