import { P, kfn, type KFn } from '../../sim/index.ts';
import { E2BIG, EFAULT } from './errno.ts';
import type { Kernel } from './kernel.ts';
import type { UserPtr } from './mm.ts';

/**
 * uaccess with the kernel's semantics (include/linux/uaccess.h, lib/usercopy.c). Each primitive
 * charges its cost, counts as one copy with its bytes, and records the depth of the frame that
 * called it below the syscall frame (userPtrDepth).
 */
const merged = (source: string) => ({ kind: 'merged', source }) as const;

const FN_COPY_FROM: KFn = kfn({
  name: '_copy_from_user',
  layer: 'uaccess',
  inheritLayer: true,
  sig: 'unsigned long _copy_from_user(void *to, const void __user *from, unsigned long n)',
  prov: merged('lib/usercopy.c'),
});
const FN_COPY_TO: KFn = kfn({
  name: '_copy_to_user',
  layer: 'uaccess',
  inheritLayer: true,
  sig: 'unsigned long _copy_to_user(void __user *to, const void *from, unsigned long n)',
  prov: merged('lib/usercopy.c'),
});
const FN_CHECK_ZEROED: KFn = kfn({
  name: 'check_zeroed_user',
  layer: 'uaccess',
  inheritLayer: true,
  sig: 'int check_zeroed_user(const void __user *from, size_t size)',
  prov: merged('lib/usercopy.c'),
});

function mmOf(k: Kernel) {
  return k.cur().mm;
}

/**
 * copy_from_user: returns the number of bytes NOT copied (0 on success); the uncopied tail of `to`
 * is zeroed, as the kernel does.
 */
export function copy_from_user(k: Kernel, to: Uint8Array, from: UserPtr, n: number, toOff = 0): number {
  const depth = k.sim.tracer.depthBelowSyscall();
  return k.sim.call(FN_COPY_FROM, () => {
    k.sim.charge(P.copyFromUser, 1, n);
    k.sim.recorder.copy('from', n, depth);
    const left = mmOf(k).access(from, to, toOff, n, false);
    if (left) to.fill(0, toOff + n - left, toOff + n);
    return left;
  });
}

/** copy_to_user: returns the number of bytes NOT copied. */
export function copy_to_user(k: Kernel, to: UserPtr, from: Uint8Array, n: number, fromOff = 0): number {
  const depth = k.sim.tracer.depthBelowSyscall();
  return k.sim.call(FN_COPY_TO, () => {
    k.sim.charge(P.copyToUser, 1, n);
    k.sim.recorder.copy('to', n, depth);
    return mmOf(k).access(to, from, fromOff, n, true);
  });
}

const scratch = new Uint8Array(8);
const scratchView = new DataView(scratch.buffer);

/** get_user of a 1, 2 or 4-byte value: `{err: 0 | −EFAULT, val}`. */
export function get_user(k: Kernel, ptr: UserPtr, size: 1 | 2 | 4): { err: number; val: number } {
  const depth = k.sim.tracer.depthBelowSyscall();
  k.sim.charge(P.getUser, 1, size);
  k.sim.recorder.copy('from', size, depth);
  if (mmOf(k).access(ptr, scratch, 0, size, false)) return { err: -EFAULT, val: 0 };
  const val = size === 1 ? scratch[0]! : size === 2 ? scratchView.getUint16(0, true) : scratchView.getUint32(0, true);
  return { err: 0, val };
}

/** get_user of a u64. */
export function get_user_u64(k: Kernel, ptr: UserPtr): { err: number; val: bigint } {
  const depth = k.sim.tracer.depthBelowSyscall();
  k.sim.charge(P.getUser, 1, 8);
  k.sim.recorder.copy('from', 8, depth);
  if (mmOf(k).access(ptr, scratch, 0, 8, false)) return { err: -EFAULT, val: 0n };
  return { err: 0, val: scratchView.getBigUint64(0, true) };
}

/** put_user of a 1, 2, 4 or 8-byte value; returns 0 or −EFAULT. */
export function put_user(k: Kernel, val: number | bigint, ptr: UserPtr, size: 1 | 2 | 4 | 8): number {
  const depth = k.sim.tracer.depthBelowSyscall();
  k.sim.charge(P.putUser, 1, size);
  k.sim.recorder.copy('to', size, depth);
  if (size === 8) scratchView.setBigUint64(0, BigInt(val), true);
  else if (size === 4) scratchView.setUint32(0, Number(val), true);
  else if (size === 2) scratchView.setUint16(0, Number(val), true);
  else scratch[0] = Number(val);
  return mmOf(k).access(ptr, scratch, 0, size, true) ? -EFAULT : 0;
}

/**
 * copy_struct_from_user (include/linux/uaccess.h): copies a user struct of `usize` bytes into a
 * kernel struct of `ksize` bytes. A shorter user struct is zero-extended; a longer one must have
 * an all-zero tail (checked with check_zeroed_user) or the call fails with −E2BIG. Returns 0,
 * −E2BIG or −EFAULT. It counts as one copy of the bytes read from user memory.
 */
export function copy_struct_from_user(k: Kernel, dst: Uint8Array, ksize: number, src: UserPtr, usize: number): number {
  const depth = k.sim.tracer.depthBelowSyscall();
  const size = Math.min(ksize, usize);
  const rest = Math.max(ksize, usize) - size;
  k.sim.charge(P.copyFromUser, 1, usize);
  k.sim.recorder.copy('from', usize, depth);
  const mm = mmOf(k);
  if (usize < ksize) {
    dst.fill(0, size, ksize);
  } else if (usize > ksize) {
    const ret = k.sim.call(FN_CHECK_ZEROED, () => {
      const tail = new Uint8Array(rest);
      if (mm.access(src + ksize, tail, 0, rest, false)) return -EFAULT;
      return tail.every((b) => b === 0) ? 1 : 0;
    });
    if (ret === 0) return -E2BIG;
    if (ret < 0) return ret;
  }
  return k.sim.call(FN_COPY_FROM, () => (mm.access(src, dst, 0, size, false) ? -EFAULT : 0));
}
