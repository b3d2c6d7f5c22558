import { describe, expect, it } from 'vitest';
import { kfn } from '../../../sim/index.ts';
import { EBADF, EINVAL, ENOENT, ENOTTY, IS_ERR } from '../../../models/kernel/errno.ts';
import type { FileOperations } from '../../../models/kernel/files.ts';
import { _IO, _IOR, _IOW, _IOWR, _IOC_NR, _IOC_SIZE, _IOC_TYPE, hexCmd } from '../../../models/kernel/ioctl.ts';
import type { Kernel } from '../../../models/kernel/kernel.ts';
import { copy_struct_from_user, get_user } from '../../../models/kernel/uaccess.ts';
import { uptr } from '../../../models/kernel/mm.ts';
import { bootKernel } from '../../helpers/kernel.ts';

const VFIO_TYPE = 0x3b; // ';'
const CMD = _IO(VFIO_TYPE, 100 + 18); // v8's NESTING_OP on a container, BIND_IOMMUFD on a cdev

const prov = { kind: 'merged', source: 'test' } as const;
/** A file type whose ioctl reads `size` bytes of argsz-prefixed struct and returns a tag. */
function fileType(type: string, name: string, size: number, tag: number): FileOperations {
  const entry = kfn({ name: `${type}_ioctl`, layer: type, sig: `long ${type}_ioctl(struct file *, unsigned int, unsigned long)`, prov, entry: 'ioctl' });
  return {
    type,
    ioctlName: (cmd) => (cmd === CMD ? name : undefined),
    unlocked_ioctl(k: Kernel, _file, cmd, arg) {
      return k.sim.call(entry, () => {
        if (cmd !== CMD) return -ENOTTY;
        const argsz = get_user(k, uptr(arg), 4);
        if (argsz.err) return argsz.err;
        if (argsz.val < size) return -EINVAL;
        const ret = copy_struct_from_user(k, new Uint8Array(size), size, uptr(arg), argsz.val);
        return ret < 0 ? ret : tag;
      });
    },
  };
}

function setup() {
  const env = bootKernel();
  env.k.devfs.register('/dev/vfio/vfio', fileType('vfio-container', 'VFIO_IOMMU_NESTING_OP', 16, 1));
  env.k.devfs.register('/dev/vfio/devices/vfio0', fileType('vfio-cdev', 'VFIO_DEVICE_BIND_IOMMUFD', 16, 2));
  const buf = env.task.mm.mmap(4096, 'qemu:heap');
  if (IS_ERR(buf)) throw new Error('mmap');
  const arg = new Uint8Array(16);
  new DataView(arg.buffer).setUint32(0, 16, true);
  env.task.mm.access(buf, arg, 0, 16, true);
  return { ...env, buf };
}

describe('ioctl encoding', () => {
  it('matches the kernel headers\' numbers', () => {
    expect(hexCmd(CMD)).toBe('0x3B76');
    expect(hexCmd(_IO(VFIO_TYPE, 0x80 + 9))).toBe('0x3B89'); // IOMMU_HWPT_ALLOC
    expect(hexCmd(_IOR(0xaf, 0x70, 4))).toBe('0x8004AF70'); // VHOST_VDPA_GET_DEVICE_ID
    expect(hexCmd(_IOW(0xaf, 0x7c, 4))).toBe('0x4004AF7C');
    const c = _IOWR(0xaf, 0x10, 24);
    expect([_IOC_TYPE(c), _IOC_NR(c), _IOC_SIZE(c)]).toEqual([0xaf, 0x10, 24]);
  });
});

describe('syscalls', () => {
  it('resolves the same ioctl number per file type', () => {
    const { sys, task, buf, sim } = setup();
    const cont = sys.open(task, '/dev/vfio/vfio');
    const cdev = sys.open(task, '/dev/vfio/devices/vfio0');
    expect([cont, cdev]).toEqual([0, 1]);
    const rec = sim.step(task.thread, '1', 'two files', () => {
      expect(sys.ioctl(task, cont, CMD, buf)).toBe(1);
      expect(sys.ioctl(task, cdev, CMD, buf)).toBe(2);
    });
    expect(rec.ioctls.map((i) => [i.name, i.file, i.copiesFromUser, i.bytesFromUser])).toEqual([
      ['VFIO_IOMMU_NESTING_OP', 'vfio-container', 2, 20],
      ['VFIO_DEVICE_BIND_IOMMUFD', 'vfio-cdev', 2, 20],
    ]);
    expect(rec.syscalls).toBe(2);
  });

  it('returns −1 with errno EBADF for a bad fd and ENOTTY for an unknown number', () => {
    const { sys, task, buf, sim } = setup();
    const fd = sys.open(task, '/dev/vfio/vfio');
    const rec = sim.step(task.thread, '1', 'errors', () => {
      expect(sys.ioctl(task, 42, CMD, buf)).toBe(-1);
      expect(task.errno).toBe(EBADF);
      expect(sys.ioctl(task, fd, _IO(VFIO_TYPE, 100 + 40), buf)).toBe(-1);
      expect(task.errno).toBe(ENOTTY);
      expect(sys.strerror(task)).toBe('ENOTTY');
    });
    expect(rec.ioctls.map((i) => [i.name, i.file, i.ret])).toEqual([
      ['0x3B76', '(bad fd)', -EBADF], // no file: the number cannot be resolved
      ['0x3B8C', 'vfio-container', -ENOTTY],
    ]);
    expect(sys.open(task, '/dev/nonesuch')).toBe(-1);
    expect(task.errno).toBe(ENOENT);
    expect(sys.close(task, 99)).toBe(-1);
    expect(task.errno).toBe(EBADF);
  });

  it('runs release on the last close, also when the fd was handed to another process', () => {
    const { k, sys, task, sim } = setup();
    const released: string[] = [];
    k.devfs.register('/dev/iommu', { type: 'iommufd', release: (kk) => released.push(kk.current?.process.comm ?? '?') });
    const fd = sys.open(task, '/dev/iommu');
    const other = k.createProcess('helper');
    const fd2 = sys.passFd(task, fd, other);
    expect(fd2).toBe(0);
    expect(sim.leaks.count('fd')).toBe(2);
    expect(sys.close(task, fd)).toBe(0);
    expect(released).toEqual([]);
    expect(sys.close(other, fd2)).toBe(0);
    // the release runs in the context of whoever dropped the last reference
    expect(released).toEqual(['helper']);
    sim.leaks.assertClean();
  });

  it('lets an exception in a handler surface as an oops through the syscall', () => {
    const { k, sys, task } = setup();
    k.devfs.register('/dev/broken', {
      type: 'broken',
      unlocked_ioctl: () => {
        throw new TypeError('NULL pointer dereference');
      },
    });
    const fd = sys.open(task, '/dev/broken');
    expect(() => sys.ioctl(task, fd, CMD, 0)).toThrow(/Oops: NULL pointer dereference[\s\S]*vfs_ioctl[\s\S]*__x64_sys_ioctl/);
  });
});
