/**
 * Backend A's userspace plumbing: a scratch heap in the VMM's memory where uAPI structs are encoded
 * before an ioctl and read back after it, and the syscalls wrapped so that a failure carries the
 * call's name (IntentFailure). Userspace only: Syscalls and the uAPI codec, no subsystem.
 */
import { IS_ERR } from '../kernel/errno.ts';
import { uptr, type UserPtr } from '../kernel/mm.ts';
import type { Task } from '../kernel/process.ts';
import type { Syscalls } from '../kernel/syscalls.ts';
import { decode, encode, type StructDecl, type UapiInput, type UapiObject } from '../kernel/uapi/index.ts';
import { failErrno, type IntentFailure } from './backend.ts';
import { setU32 } from '../kernel/uapi/le.ts';

const HEAP = 256 * 1024;

/** A failed syscall, thrown inside an intent and turned into its IntentResult at the boundary. */
export class SyscallFailed extends Error {
  constructor(readonly failure: IntentFailure) {
    super(failure.message);
  }
}

export class UserMem {
  private readonly base: UserPtr;
  private next = 0;

  constructor(
    readonly sys: Syscalls,
    readonly task: Task,
  ) {
    const b = task.mm.mmap(HEAP, 'qemu:heap');
    if (IS_ERR(b)) throw new Error('backend-tunnel: no memory for the VMM heap');
    this.base = b;
  }

  /** a fresh 8-aligned buffer; the heap is a ring (the VMM reuses its malloc'd buffers) */
  alloc(len: number): UserPtr {
    const n = Math.ceil(Math.max(len, 8) / 8) * 8;
    if (this.next + n > HEAP) this.next = 0;
    const at = uptr(this.base + this.next);
    this.next += n;
    return at;
  }

  bytes(b: Uint8Array, room = b.length): UserPtr {
    const at = this.alloc(room);
    if (this.task.mm.access(at, b, 0, b.length, true)) throw new Error('backend-tunnel: heap write');
    return at;
  }

  put(decl: StructDecl, v: UapiInput, room?: number): UserPtr {
    const b = encode(decl, v);
    return this.bytes(b, room ?? b.length);
  }

  read(at: number, len: number): Uint8Array {
    const b = new Uint8Array(len);
    if (this.task.mm.access(at, b, 0, len, false)) throw new Error('backend-tunnel: heap read');
    return b;
  }

  get(decl: StructDecl, at: number, len: number): UapiObject {
    return decode(decl, this.read(at, len));
  }

  u32(v: number): UserPtr {
    const b = new Uint8Array(4);
    setU32(b, 0, v >>> 0);
    return this.bytes(b);
  }

  s32(v: number): UserPtr {
    const b = new Uint8Array(4);
    setU32(b, 0, v);
    return this.bytes(b);
  }

  // ---- syscalls that throw SyscallFailed ---------------------------------------------------------

  private check(ret: number, call: string, detail?: string, t: Task = this.task): number {
    if (ret < 0) throw new SyscallFailed(failErrno(t.errno, call, detail));
    return ret;
  }

  open(path: string): number {
    return this.check(this.sys.open(this.task, path), 'open', path);
  }

  ioctl(fd: number, cmd: number, arg: number, name: string): number {
    return this.check(this.sys.ioctl(this.task, fd, cmd, arg), name);
  }

  pread(fd: number, at: UserPtr, len: number, pos: number, what: string): number {
    return this.check(this.sys.pread(this.task, fd, at, len, pos), 'pread', what);
  }

  pwrite(fd: number, at: UserPtr, len: number, pos: number, what: string): number {
    return this.check(this.sys.pwrite(this.task, fd, at, len, pos), 'pwrite', what);
  }

  write(fd: number, at: UserPtr, len: number, what: string): number {
    return this.check(this.sys.write(this.task, fd, at, len), 'write', what);
  }

  eventfd(): number {
    return this.check(this.sys.eventfd(this.task), 'eventfd');
  }
}

/** Runs an intent body; a SyscallFailed becomes its result (the body unwinds first). */
export function intent<T>(body: () => T): T | IntentFailure {
  try {
    return body();
  } catch (e) {
    if (e instanceof SyscallFailed) return e.failure;
    throw e;
  }
}

/** walks a VFIO capability chain: [id, offset] pairs, offsets from the start of `bytes` */
export function capChain(bytes: Uint8Array, first: number): [number, number][] {
  const v = new DataView(bytes.buffer, bytes.byteOffset);
  const out: [number, number][] = [];
  for (let at = first; at && at + 8 <= bytes.length; at = v.getUint32(at + 4, true)) out.push([v.getUint16(at, true), at]);
  return out;
}
