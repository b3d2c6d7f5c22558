/**
 * Linux errno values (include/uapi/asm-generic/errno-base.h, errno.h; ENOTSUPP and friends are
 * kernel-internal, include/linux/errno.h). Kernel models return −errno, as the kernel does.
 */
export const EPERM = 1;
export const ENOENT = 2;
export const ESRCH = 3;
export const EINTR = 4;
export const EIO = 5;
export const ENXIO = 6;
export const E2BIG = 7;
export const EBADF = 9;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EACCES = 13;
export const EFAULT = 14;
export const EBUSY = 16;
export const EEXIST = 17;
export const EXDEV = 18;
export const ENODEV = 19;
export const EINVAL = 22;
export const ENFILE = 23;
export const EMFILE = 24;
export const ENOTTY = 25;
export const ENOSPC = 28;
export const ESPIPE = 29;
export const ERANGE = 34;
export const EDEADLK = 35;
export const ENOSYS = 38;
export const EOVERFLOW = 75;
export const EBADFD = 77;
export const EMSGSIZE = 90;
export const EOPNOTSUPP = 95;
export const EADDRINUSE = 98;
export const ENOBUFS = 105;
export const ETIMEDOUT = 110;
export const ENOTSUPP = 524;

const NAMES: Record<number, string> = {
  [EPERM]: 'EPERM',
  [ENOENT]: 'ENOENT',
  [ESRCH]: 'ESRCH',
  [EINTR]: 'EINTR',
  [EIO]: 'EIO',
  [ENXIO]: 'ENXIO',
  [E2BIG]: 'E2BIG',
  [EBADF]: 'EBADF',
  [EAGAIN]: 'EAGAIN',
  [ENOMEM]: 'ENOMEM',
  [EACCES]: 'EACCES',
  [EFAULT]: 'EFAULT',
  [EBUSY]: 'EBUSY',
  [EEXIST]: 'EEXIST',
  [EXDEV]: 'EXDEV',
  [ENODEV]: 'ENODEV',
  [EINVAL]: 'EINVAL',
  [ENFILE]: 'ENFILE',
  [EMFILE]: 'EMFILE',
  [ENOTTY]: 'ENOTTY',
  [ENOSPC]: 'ENOSPC',
  [ESPIPE]: 'ESPIPE',
  [ERANGE]: 'ERANGE',
  [EDEADLK]: 'EDEADLK',
  [ENOSYS]: 'ENOSYS',
  [EOVERFLOW]: 'EOVERFLOW',
  [EBADFD]: 'EBADFD',
  [EMSGSIZE]: 'EMSGSIZE',
  [EOPNOTSUPP]: 'EOPNOTSUPP',
  [EADDRINUSE]: 'EADDRINUSE',
  [ENOBUFS]: 'ENOBUFS',
  [ETIMEDOUT]: 'ETIMEDOUT',
  [ENOTSUPP]: 'ENOTSUPP',
};

/** "EINVAL" for 22 or −22; "errno 200" for an unknown value. */
export function errname(e: number): string {
  const n = Math.abs(e);
  return NAMES[n] ?? `errno ${n}`;
}

/** The errno value for a name, for scenario files and tests ("EINVAL" → 22). */
export function errnoByName(name: string): number | undefined {
  for (const [n, s] of Object.entries(NAMES)) if (s === name) return Number(n);
  return undefined;
}

/**
 * ERR_PTR: a kernel function that returns a pointer returns this on error. `IS_ERR(x)` tells it
 * from an object; `PTR_ERR(x)` gives the (negative) errno.
 */
export class ErrPtr {
  constructor(readonly err: number) {
    if (!(err < 0 && err >= -4095)) throw new RangeError(`ERR_PTR(${err}): not a negative errno`);
  }
}

export function ERR_PTR(err: number): ErrPtr {
  return new ErrPtr(err);
}

export function IS_ERR<T>(x: T | ErrPtr): x is ErrPtr {
  return x instanceof ErrPtr;
}

export function PTR_ERR(x: ErrPtr): number {
  return x.err;
}
