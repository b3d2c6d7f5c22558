import { describe, expect, it } from 'vitest';
import { E2BIG, EBUSY, EFAULT, EINVAL, ENODEV, ENOENT, ENOTTY, errname } from '../../../models/kernel/errno.ts';
import { _IO } from '../../../models/kernel/ioctl.ts';
import {
  IOMMU_OPTION_HUGE_PAGES,
  IOMMU_OPTION_OP_GET,
  IOMMU_OPTION_OP_SET,
  IOMMU_OPTION_RLIMIT_MODE,
  IOMMU_VFIO_IOAS_CLEAR,
  IOMMU_VFIO_IOAS_GET,
  IOMMU_VFIO_IOAS_SET,
  encode,
  iommu_destroy,
  iommu_option,
  iommu_vfio_ioas,
  offsetOfEnd,
  sizeOf,
} from '../../../models/kernel/uapi/index.ts';
import { IOMMUFD_CMD_BASE, IOMMUFD_TYPE, IOMMU_DESTROY, IOMMU_OPTION, IOMMU_VFIO_IOAS } from '../../../models/iommufd/iommufd_h.ts';
import { iommufd_ioctl_ops } from '../../../models/iommufd/main.ts';
import { expectErrno, expectOk, setupIommufd } from './helpers.ts';

/**
 * FIXTURE(iommufd) of tools/testing/selftests/iommu/iommufd.c (read at torvalds/linux@0795b305,
 * the ~6.8 text; the 6.15 fixture adds only ioctls this part does not model yet).
 */
describe('FIXTURE(iommufd)', () => {
  it('iommufd.simple_close', () => {
    const h = setupIommufd();
    h.teardown();
  });

  it('iommufd.cmd_fail', () => {
    const h = setupIommufd();
    // object id is invalid
    expectErrno(h.destroy_raw(0), ENOENT);
    // bad pointer: get_user of the size faults
    expect(h.sys.ioctl(h.task, h.fd, IOMMU_DESTROY, 0)).toBe(-1);
    expect(errname(h.task.errno)).toBe('EFAULT');
    expect(h.task.errno).toBe(EFAULT);
    // unknown ioctl
    const r = h.ioctl(_IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE - 1), iommu_destroy, { id: 0 });
    expectErrno(r, ENOTTY);
    h.teardown();
  });

  /**
   * TEST_LENGTH for every ioctl of the table (the selftest lists the 6.8 ones; each row here is
   * one of them): min_size − 1 → EINVAL; sizeof + 1 with a 0xff tail → E2BIG; sizeof + 1 with a
   * zero tail behaves exactly as sizeof.
   */
  it('iommufd.cmd_length', () => {
    const h = setupIommufd();
    const selftestRows: [string, string][] = [
      ['IOMMU_DESTROY', 'id'],
      ['IOMMU_IOAS_ALLOC', 'out_ioas_id'],
      ['IOMMU_IOAS_IOVA_RANGES', 'out_iova_alignment'],
      ['IOMMU_IOAS_ALLOW_IOVAS', 'allowed_iovas'],
      ['IOMMU_IOAS_MAP', 'iova'],
      ['IOMMU_IOAS_COPY', 'src_iova'],
      ['IOMMU_IOAS_UNMAP', 'length'],
      ['IOMMU_OPTION', 'val64'],
      ['IOMMU_VFIO_IOAS', '__reserved'],
      // part 1b: TEST_LENGTH(iommu_hwpt_alloc, IOMMU_HWPT_ALLOC, __reserved) and
      // TEST_LENGTH(iommu_hw_info, IOMMU_GET_HW_INFO, __reserved)
      ['IOMMU_HWPT_ALLOC', '__reserved'],
      ['IOMMU_GET_HW_INFO', '__reserved'],
      // part 2: TEST_LENGTH(iommu_hwpt_invalidate, IOMMU_HWPT_INVALIDATE, __reserved) and
      // TEST_LENGTH(iommu_fault_alloc, IOMMU_FAULT_QUEUE_ALLOC, out_fault_fd)
      ['IOMMU_HWPT_INVALIDATE', '__reserved'],
      ['IOMMU_FAULT_QUEUE_ALLOC', 'out_fault_fd'],
    ];
    expect(iommufd_ioctl_ops.map((op) => op.name).sort()).toEqual(selftestRows.map((r) => r[0]).sort());
    for (const op of iommufd_ioctl_ops) {
      const last = selftestRows.find((r) => r[0] === op.name)![1];
      const min_size = offsetOfEnd(op.decl, last);
      expect(op.min_size, op.name).toBe(min_size);
      expect(op.size, op.name).toBe(sizeOf(op.decl));
      const run = (size: number, extra: number) => {
        const bytes = new Uint8Array(op.size + 1);
        bytes.set(encode(op.decl, { size }));
        bytes[op.size] = extra;
        h.poke(h.cmdArea, bytes);
        h.task.errno = 0;
        const rc = h.sys.ioctl(h.task, h.fd, op.ioctl_num, h.cmdArea);
        return { rc, errno: rc < 0 ? h.task.errno : 0 };
      };
      expect(run(min_size - 1, 0xff), op.name).toEqual({ rc: -1, errno: EINVAL });
      expect(run(op.size + 1, 0xff), op.name).toEqual({ rc: -1, errno: E2BIG });
      const exact = run(op.size, 0xff);
      expect(run(op.size + 1, 0), op.name).toEqual(exact);
    }
    // FAULT_QUEUE_ALLOC succeeded twice: its fds hold the ictx until closed
    for (const fd of h.task.process.files.openFds()) if (fd !== h.fd) expect(h.sys.close(h.task, fd)).toBe(0);
    h.teardown();
  });

  it('iommufd.cmd_ex_fail', () => {
    const h = setupIommufd();
    const future = new Uint8Array(8);
    // object id is invalid and command is longer
    expectErrno(h.ioctl(IOMMU_DESTROY, iommu_destroy, { size: 16, id: 0 }, future), ENOENT);
    // future area is non-zero
    future[0] = 1;
    expectErrno(h.ioctl(IOMMU_DESTROY, iommu_destroy, { size: 16, id: 0 }, future), E2BIG);
    // original command "works"
    expectErrno(h.ioctl(IOMMU_DESTROY, iommu_destroy, { size: 8, id: 0 }, future), ENOENT);
    // short command fails
    expectErrno(h.ioctl(IOMMU_DESTROY, iommu_destroy, { size: 7, id: 0 }, future), EINVAL);
    h.teardown();
  });

  it('iommufd.global_options', () => {
    const h = setupIommufd();
    const cmd = { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_GET, val64: 1n };
    let r = h.ioctl(IOMMU_OPTION, iommu_option, cmd);
    expectOk(r);
    expect(r.out.val64).toBe(0n);
    // this requires root (CAP_SYS_RESOURCE: the modelled VMM has it)
    expectOk(h.ioctl(IOMMU_OPTION, iommu_option, { ...cmd, op: IOMMU_OPTION_OP_SET, val64: 1n }));
    expectErrno(h.ioctl(IOMMU_OPTION, iommu_option, { ...cmd, op: IOMMU_OPTION_OP_SET, val64: 2n }), EINVAL);
    r = h.ioctl(IOMMU_OPTION, iommu_option, { ...cmd, op: IOMMU_OPTION_OP_GET });
    expectOk(r);
    expect(r.out.val64).toBe(1n);
    expectOk(h.ioctl(IOMMU_OPTION, iommu_option, { ...cmd, op: IOMMU_OPTION_OP_SET, val64: 0n }));
    // HUGE_PAGES is an IOAS option: object 0 is no IOAS
    expectErrno(h.ioctl(IOMMU_OPTION, iommu_option, { option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_GET, val64: 0n }), ENOENT);
    expectErrno(h.ioctl(IOMMU_OPTION, iommu_option, { option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_SET, val64: 0n }), ENOENT);
    // not in the selftest: the mode is fixed once objects exist
    h.ioas_alloc();
    expectErrno(h.ioctl(IOMMU_OPTION, iommu_option, { ...cmd, op: IOMMU_OPTION_OP_SET, val64: 1n }), EBUSY);
    h.teardown();
  });

  it('iommufd.vfio_ioas', () => {
    const h = setupIommufd();
    // ENODEV if there is no compat ioas
    expectErrno(h.ioctl(IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op: IOMMU_VFIO_IOAS_GET }), ENODEV);
    // invalid id for set
    expectErrno(h.ioctl(IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op: IOMMU_VFIO_IOAS_SET }), ENOENT);
    // valid id for set
    const ioas_id = h.ioas_alloc();
    expectOk(h.ioctl(IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op: IOMMU_VFIO_IOAS_SET, ioas_id }));
    // same id comes back from get
    const r = h.ioctl(IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op: IOMMU_VFIO_IOAS_GET });
    expectOk(r);
    expect(r.out.ioas_id).toBe(ioas_id);
    // clear works
    expectOk(h.ioctl(IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op: IOMMU_VFIO_IOAS_CLEAR }));
    expectErrno(h.ioctl(IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op: IOMMU_VFIO_IOAS_GET }), ENODEV);
    h.teardown();
  });

  /** Not a selftest: IOMMU_DESTROY of an IOAS, ids reused lowest-first (xa_alloc, ALLOC1). */
  it('iommufd.destroy', () => {
    const h = setupIommufd();
    expect([h.ioas_alloc(), h.ioas_alloc(), h.ioas_alloc()]).toEqual([1, 2, 3]);
    expectOk(h.destroy_raw(2));
    expectErrno(h.destroy_raw(2), ENOENT);
    expect(h.ioas_alloc()).toBe(2);
    expect(h.ioas_alloc()).toBe(4);
    h.teardown();
  });
});
