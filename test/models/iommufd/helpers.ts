import { expect } from 'vitest';
import { IS_ERR, errname } from '../../../models/kernel/errno.ts';
import { down_write, up_write } from '../../../models/kernel/locks.ts';
import { uptr, type UserPtr } from '../../../models/kernel/mm.ts';
import {
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  decode,
  encode,
  iommu_destroy,
  iommu_ioas_alloc,
  iommu_ioas_map,
  iommu_ioas_unmap,
  type StructDecl,
  type UapiInput,
  type UapiObject,
} from '../../../models/kernel/uapi/index.ts';
import { IommuCore } from '../../../models/iommu/iommu.ts';
import type { IommuDomain, IommuOps, IotlbGather } from '../../../models/iommu/types.ts';
import { iopt_reserve_iova, iopt_table_add_domain, iopt_table_remove_domain } from '../../../models/iommufd/io_pagetable.ts';
import { iommufd_get_ioas, type IommufdIoas } from '../../../models/iommufd/ioas.ts';
import { IOMMU_DESTROY, IOMMU_IOAS_ALLOC, IOMMU_IOAS_MAP, IOMMU_IOAS_UNMAP } from '../../../models/iommufd/iommufd_h.ts';
import { iommufd_object_get_users, iommufd_object_put_users, iommufd_put_object, type IommufdCtx } from '../../../models/iommufd/iommufd_private.ts';
import { iommufd_init } from '../../../models/iommufd/main.ts';
import type { Task } from '../../../models/kernel/process.ts';
import type { Syscalls } from '../../../models/kernel/syscalls.ts';
import { bootKernel } from '../../helpers/kernel.ts';

/**
 * The selftest harness (tools/testing/selftests/iommu/iommufd_utils.h), as a userspace program
 * over the simulated syscalls: structs are encoded into user memory the test mmaps, and ioctls
 * return −1 with errno like libc.
 */
export const PAGE_SIZE = 4096;
export const BUFFER_SIZE = PAGE_SIZE * 16;
/** the mock driver's aperture (iommufd_test.h), reused for the fake domain */
export const MOCK_APERTURE_START = 1 << 24;
export const MOCK_APERTURE_LAST = 2 ** 31 - 1;
export const U64_MAX = (1n << 64n) - 1n;
export const SIZE_MAX = U64_MAX;

export type Harness = ReturnType<typeof setupIommufd>;

export interface IoctlResult {
  rc: number;
  errno: number;
  /** the struct as userspace sees it after the call */
  out: UapiObject;
}

/**
 * The user side every selftest harness shares: raw user memory access, ioctl(fd, nr, &cmd) with
 * `cmd` encoded at `cmdArea` (plus `tail` bytes after it, for the longer-struct cases) returning
 * rc, errno and the struct as userspace then sees it, test_ioctl_ioas_alloc, and the ictx.
 */
export function selftestUserCalls(sys: Syscalls, task: Task, fd: number, cmdArea: UserPtr) {
  const u = {
    /** writes raw bytes to user memory */
    poke(at: number, bytes: Uint8Array): void {
      expect(task.mm.access(at, bytes, 0, bytes.length, true)).toBe(0);
    },
    peek(at: number, len: number): Uint8Array {
      const out = new Uint8Array(len);
      expect(task.mm.access(at, out, 0, len, false)).toBe(0);
      return out;
    },
    ioctl(nr: number, decl: StructDecl, cmd: UapiInput, tail?: Uint8Array, onFd?: number): IoctlResult {
      const bytes = encode(decl, { size: encode(decl, cmd).length, ...cmd });
      u.poke(cmdArea, bytes);
      if (tail) u.poke(cmdArea + bytes.length, tail);
      task.errno = 0;
      const rc = sys.ioctl(task, onFd ?? fd, nr, cmdArea);
      return { rc, errno: rc < 0 ? task.errno : 0, out: decode(decl, u.peek(cmdArea, bytes.length)) };
    },
    /** test_ioctl_ioas_alloc */
    ioas_alloc(): number {
      const r = u.ioctl(IOMMU_IOAS_ALLOC, iommu_ioas_alloc, {});
      expect(r.rc, errname(r.errno)).toBe(0);
      return r.out.out_ioas_id as number;
    },
    /** the iommufd_ctx behind the fd (what an in-kernel user reaches through iommufd_ctx_from_fd) */
    ictx(): IommufdCtx {
      const f = task.process.files.get(fd);
      if (!f) throw new Error('fd closed');
      return f.private_data as IommufdCtx;
    },
  };
  return u;
}

/** FIXTURE_SETUP(iommufd): a booted kernel with /dev/iommu registered, the fd open and `buffer` mapped. */
export function setupIommufd(opts: { frames?: number; seed?: number } = {}) {
  const { sim, k, sys, task } = bootKernel({ frames: opts.frames ?? 1024, seed: opts.seed ?? 1 });
  const core = new IommuCore(k);
  const mod = iommufd_init(k, core);
  const fd = sys.open(task, '/dev/iommu');
  expect(fd).toBeGreaterThanOrEqual(0);
  // the first mapping lands at the mmap base, so it is hugepage-aligned like the selftest's buffer
  const buf = task.mm.mmap(BUFFER_SIZE, 'selftest:buffer');
  const cmdArea = task.mm.mmap(4 * PAGE_SIZE, 'selftest:cmd');
  if (IS_ERR(buf) || IS_ERR(cmdArea)) throw new Error('mmap');
  const attached = new Map<FakeDomain, IommufdIoas>();
  const h = {
    sim,
    k,
    sys,
    task,
    core,
    mod,
    fd,
    buffer: buf as UserPtr,
    cmdArea: cmdArea as UserPtr,
    ...selftestUserCalls(sys, task, fd, cmdArea as UserPtr),

    /** _test_ioctl_ioas_map: returns {rc, errno, iova} */
    ioas_map_raw(ioas_id: number, va: number | bigint, length: number | bigint, iova: number | bigint, flags: number): { rc: number; errno: number; iova: bigint } {
      const r = h.ioctl(IOMMU_IOAS_MAP, iommu_ioas_map, {
        flags,
        ioas_id,
        user_va: BigInt(va),
        length: BigInt(length),
        iova: BigInt(iova),
      });
      return { rc: r.rc, errno: r.errno, iova: r.out.iova as bigint };
    },
    /** test_ioctl_ioas_map: the kernel picks the IOVA */
    ioas_map(ioas_id: number, va: number | bigint, length: number | bigint): bigint {
      const r = h.ioas_map_raw(ioas_id, va, length, 0, IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE);
      expect(r.rc, errname(r.errno)).toBe(0);
      return r.iova;
    },
    /** test_ioctl_ioas_map_fixed */
    ioas_map_fixed(ioas_id: number, va: number | bigint, length: number | bigint, iova: number | bigint): void {
      const r = h.ioas_map_raw(ioas_id, va, length, iova, IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE);
      expect(r.rc, errname(r.errno)).toBe(0);
    },
    /** test_err_ioctl_ioas_map_fixed */
    err_ioas_map_fixed(errno: number, ioas_id: number, va: number | bigint, length: number | bigint, iova: number | bigint): void {
      const r = h.ioas_map_raw(ioas_id, va, length, iova, IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE);
      expect(r.rc).toBe(-1);
      expect(errname(r.errno)).toBe(errname(errno));
    },
    /** _test_ioctl_ioas_unmap: returns {rc, errno, length} */
    ioas_unmap_raw(ioas_id: number, iova: number | bigint, length: number | bigint): { rc: number; errno: number; length: bigint } {
      const r = h.ioctl(IOMMU_IOAS_UNMAP, iommu_ioas_unmap, { ioas_id, iova: BigInt(iova), length: BigInt(length) });
      return { rc: r.rc, errno: r.errno, length: r.out.length as bigint };
    },
    ioas_unmap(ioas_id: number, iova: number | bigint, length: number | bigint): bigint {
      const r = h.ioas_unmap_raw(ioas_id, iova, length);
      expect(r.rc, errname(r.errno)).toBe(0);
      return r.length;
    },
    err_ioas_unmap(errno: number, ioas_id: number, iova: number | bigint, length: number | bigint): void {
      const r = h.ioas_unmap_raw(ioas_id, iova, length);
      expect(r.rc).toBe(-1);
      expect(errname(r.errno)).toBe(errname(errno));
    },
    /** _test_ioctl_destroy */
    destroy_raw(id: number): { rc: number; errno: number } {
      const r = h.ioctl(IOMMU_DESTROY, iommu_destroy, { id });
      return { rc: r.rc, errno: r.errno };
    },

    /** IOMMU_TEST_OP_ADD_RESERVED (selftest.c iommufd_test_add_reserved): a reserved range, owner NULL */
    add_reserved(ioas_id: number, start: number | bigint, length: number | bigint): number {
      const ioas = iommufd_get_ioas(h.ictx(), ioas_id);
      if (IS_ERR(ioas)) return ioas.err;
      down_write(ioas.iopt.iova_rwsem);
      const rc = iopt_reserve_iova(ioas.iopt, BigInt(start), BigInt(start) + BigInt(length) - 1n, null);
      up_write(ioas.iopt.iova_rwsem);
      iommufd_put_object(h.ictx(), ioas);
      return rc;
    },

    /**
     * What an HWPT_PAGING on the IOAS will do once hw_pagetable.ts exists: hold a `users`
     * reference on the IOAS and add its domain to the io_pagetable.
     */
    attach_fake_domain(ioas_id: number, dom: FakeDomain): number {
      const ictx = h.ictx();
      const ioas = iommufd_get_ioas(ictx, ioas_id);
      if (IS_ERR(ioas)) return ioas.err;
      const rc = iopt_table_add_domain(ioas.iopt, dom);
      if (!rc) {
        // refcount_inc(&ioas->obj.users) and hwpt->ioas = ioas, as iommufd_hwpt_paging_alloc
        iommufd_object_get_users(ioas);
        attached.set(dom, ioas);
      }
      iommufd_put_object(ictx, ioas);
      return rc;
    },
    /** hwpt_paging destroy: the HWPT holds its IOAS, no lookup */
    detach_fake_domain(dom: FakeDomain): void {
      const ioas = attached.get(dom);
      if (!ioas) throw new Error(`${dom.label} is not attached`);
      attached.delete(dom);
      iopt_table_remove_domain(ioas.iopt, dom);
      iommufd_object_put_users(ioas);
    },

    /** pins held now: the leak tracker's and mm->pinned_vm's view must agree */
    pins(): number {
      expect(task.mm.pinnedPages).toBe(sim.leaks.count('pin'));
      return sim.leaks.count('pin');
    },

    /** teardown_iommufd: close (destroying every object), then nothing may be left pinned or allocated */
    teardown(): void {
      expect(sys.close(task, fd)).toBe(0);
      expect(task.mm.pinnedPages).toBe(0);
      sim.leaks.assertClean('teardown_iommufd');
    },
  };
  return h;
}

/** EXPECT_ERRNO */
export function expectErrno(r: { rc: number; errno: number }, errno: number): void {
  expect(r.rc).toBe(-1);
  expect(errname(r.errno)).toBe(errname(errno));
}

export function expectOk(r: { rc: number; errno: number }): void {
  expect(r.rc, errname(r.errno)).toBe(0);
}

/**
 * A stand-in paging domain with the mock driver's aperture: map_pages / unmap_pages record what
 * they are asked and keep a page table of 4 KiB entries. `failMapAfter` makes the nth map fail.
 */
export class FakeDomain implements IommuDomain {
  readonly type = 'paging' as const;
  readonly owner = { name: 'fake' } as unknown as IommuOps;
  readonly pgsize_bitmap: number;
  readonly geometry = { aperture_start: MOCK_APERTURE_START, aperture_end: MOCK_APERTURE_LAST };
  iopf_handler = null;
  readonly alloc = null;
  readonly ptes = new Map<number, number>();
  readonly maps: { iova: number; paddr: number; size: number; prot: number }[] = [];
  readonly unmaps: { iova: number; size: number }[] = [];
  failMapAfter = Infinity;
  readonly ops;

  constructor(
    readonly label: string,
    pgsize_bitmap = 0x1000 | 0x200000,
  ) {
    this.pgsize_bitmap = pgsize_bitmap;
    this.ops = {
      map_pages: (_d: IommuDomain, iova: number, paddr: number, pgsize: number, pgcount: number, prot: number, mapped: { bytes: number }): number => {
        if (this.maps.length >= this.failMapAfter) return -12;
        this.maps.push({ iova, paddr, size: pgsize * pgcount, prot });
        for (let off = 0; off < pgsize * pgcount; off += 4096) {
          if (this.ptes.has(iova + off)) throw new Error(`${label}: iova 0x${(iova + off).toString(16)} mapped twice`);
          this.ptes.set(iova + off, paddr + off);
        }
        mapped.bytes = pgsize * pgcount;
        return 0;
      },
      unmap_pages: (_d: IommuDomain, iova: number, pgsize: number, pgcount: number, _g: IotlbGather): number => {
        this.unmaps.push({ iova, size: pgsize * pgcount });
        let n = 0;
        for (let off = 0; off < pgsize * pgcount; off += 4096) if (this.ptes.delete(iova + off)) n += 4096;
        return n;
      },
    };
  }
}

export { uptr };
export type { UapiObject };
