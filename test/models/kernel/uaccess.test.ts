import { describe, expect, it } from 'vitest';
import { kfn, type KFn } from '../../../sim/index.ts';
import { E2BIG, EFAULT, IS_ERR } from '../../../models/kernel/errno.ts';
import { uptr, type UserPtr } from '../../../models/kernel/mm.ts';
import { copy_from_user, copy_struct_from_user, copy_to_user, get_user, get_user_u64, put_user } from '../../../models/kernel/uaccess.ts';
import { bootKernel } from '../../helpers/kernel.ts';

const prov = { kind: 'merged', source: 'test' } as const;
const fnSys: KFn = kfn({ name: '__x64_sys_ioctl', layer: 'syscall', sig: 'long sys_ioctl(…)', prov, entry: 'syscall' });
const fnA: KFn = kfn({ name: 'a_ioctl', layer: 'a', sig: 'long a_ioctl(…)', prov });
const fnB: KFn = kfn({ name: 'b_helper', layer: 'b', sig: 'int b_helper(…)', prov });

/** A booted kernel, a user buffer, and a way to run kernel code "inside a syscall" of the task. */
function setup() {
  const env = bootKernel();
  const { k, task } = env;
  const buf = task.mm.mmap(8192, 'qemu:heap');
  if (IS_ERR(buf)) throw new Error('mmap');
  const inSyscall = <T>(body: () => T): T => {
    k.current = task;
    try {
      return k.sim.call(fnSys, body);
    } finally {
      k.current = null;
    }
  };
  const poke = (p: UserPtr, bytes: number[]): void => {
    expect(task.mm.access(p, Uint8Array.from(bytes), 0, bytes.length, true)).toBe(0);
  };
  return { ...env, buf, inSyscall, poke };
}

describe('copy_struct_from_user', () => {
  it('zero-fills a shorter user struct', () => {
    const { buf, inSyscall, poke, k } = setup();
    poke(buf, [1, 2, 3, 4, 5, 6, 7, 8]);
    const dst = new Uint8Array(16).fill(0xee);
    expect(inSyscall(() => copy_struct_from_user(k, dst, 16, buf, 8))).toBe(0);
    expect([...dst]).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('accepts a longer user struct whose tail is zero', () => {
    const { buf, inSyscall, poke, k } = setup();
    poke(buf, [9, 9, 9, 9, 0, 0, 0, 0]);
    const dst = new Uint8Array(4);
    expect(inSyscall(() => copy_struct_from_user(k, dst, 4, buf, 8))).toBe(0);
    expect([...dst]).toEqual([9, 9, 9, 9]);
  });

  it('rejects a longer user struct with a non-zero tail with E2BIG', () => {
    const { buf, inSyscall, poke, k } = setup();
    poke(buf, [9, 9, 9, 9, 0, 0, 1, 0]);
    expect(inSyscall(() => copy_struct_from_user(k, new Uint8Array(4), 4, buf, 8))).toBe(-E2BIG);
  });

  it('gives EFAULT for an unmapped pointer', () => {
    const { inSyscall, k } = setup();
    expect(inSyscall(() => copy_struct_from_user(k, new Uint8Array(8), 8, uptr(0x1000), 8))).toBe(-EFAULT);
  });

  it('counts one copy of the bytes read from user memory', () => {
    const { buf, inSyscall, k, sim, task } = setup();
    const rec = sim.step(task.thread, '1', 'x', () => inSyscall(() => copy_struct_from_user(k, new Uint8Array(48), 48, buf, 64)));
    expect(rec.copiesFromUser).toBe(1);
    expect(rec.bytesFromUser).toBe(64);
  });
});

describe('copy_{from,to}_user, get_user, put_user', () => {
  it('round-trips bytes through user memory across a page boundary', () => {
    const { buf, inSyscall, k } = setup();
    const at = uptr(buf + 4090);
    const src = Uint8Array.from({ length: 20 }, (_, i) => i + 1);
    expect(inSyscall(() => copy_to_user(k, at, src, 20))).toBe(0);
    const back = new Uint8Array(20);
    expect(inSyscall(() => copy_from_user(k, back, at, 20))).toBe(0);
    expect(back).toEqual(src);
  });

  it('returns the bytes not copied and zeroes them when the range runs off the mapping', () => {
    const { buf, inSyscall, poke, k } = setup();
    poke(uptr(buf + 8188), [7, 7, 7, 7]);
    const dst = new Uint8Array(8).fill(0xff);
    expect(inSyscall(() => copy_from_user(k, dst, uptr(buf + 8188), 8))).toBe(4);
    expect([...dst]).toEqual([7, 7, 7, 7, 0, 0, 0, 0]);
  });

  it('get_user and put_user move little-endian values and fault on bad pointers', () => {
    const { buf, inSyscall, k } = setup();
    expect(inSyscall(() => put_user(k, 0xdeadbeef, buf, 4))).toBe(0);
    expect(inSyscall(() => get_user(k, buf, 4))).toEqual({ err: 0, val: 0xdeadbeef });
    expect(inSyscall(() => put_user(k, 0xffff_ffff_ffff_ffffn, uptr(buf + 8), 8))).toBe(0);
    expect(inSyscall(() => get_user_u64(k, uptr(buf + 8)))).toEqual({ err: 0, val: 0xffff_ffff_ffff_ffffn });
    expect(inSyscall(() => get_user(k, uptr(16), 4))).toEqual({ err: -EFAULT, val: 0 });
    expect(inSyscall(() => put_user(k, 1, uptr(16), 2))).toBe(-EFAULT);
  });
});

describe('userPtrDepth', () => {
  it('is the depth below the syscall frame of the frame that calls the uaccess primitive', () => {
    const { buf, inSyscall, k, sim, task } = setup();
    const shallow = sim.step(task.thread, '1', 'shallow', () =>
      inSyscall(() => sim.call(fnA, () => copy_from_user(k, new Uint8Array(4), buf, 4))),
    );
    expect(shallow.userPtrDepth).toBe(1);
    const deep = sim.step(task.thread, '2', 'deep', () =>
      inSyscall(() =>
        sim.call(fnA, () => {
          get_user(k, buf, 4);
          return sim.call(fnB, () => sim.call(fnB, () => copy_from_user(k, new Uint8Array(4), buf, 4)));
        }),
      ),
    );
    expect(deep.userPtrDepth).toBe(3);
    expect(deep.copiesFromUser).toBe(2);
    // the copy primitive is charged to the caller's layer, not to "uaccess"
    expect([...deep.prims.keys()].sort()).toEqual(['a', 'b']);
  });
});
