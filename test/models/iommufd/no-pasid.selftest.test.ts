/**
 * tools/testing/selftests/iommu/iommufd.c, fixture iommufd_device_pasid, variant no_pasid (6.15):
 * a device without the PASID capability (max_pasids 0) may be bound and attached by its RID, but a
 * PASID attach is EINVAL and leaves nothing attached — through the kernel API the selftest driver
 * calls and through the VFIO cdev.
 */
import { describe, expect, it } from 'vitest';
import { EINVAL, IS_ERR, errname } from '../../../models/kernel/errno.ts';
import {
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  VFIO_DEVICE_ATTACH_PASID,
  iommu_hwpt_alloc,
  iommu_ioas_alloc,
  iommu_ioas_map,
  vfio_device_attach_iommufd_pt,
  vfio_device_bind_iommufd,
} from '../../../models/kernel/uapi/index.ts';
import { IOMMU_HWPT_ALLOC, IOMMU_IOAS_ALLOC, IOMMU_IOAS_MAP, VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_BIND_IOMMUFD } from '../../../models/kernel/uapi/ioctls/index.ts';
import { pasidEntryOf } from '../../../models/iommu/intel/pasid.ts';
import { iommufd_device_attach } from '../../../models/iommufd/device.ts';
import { HostMachine } from '../../../models/machine/host.ts';
import { iommufd_stack_init } from '../../../models/vfio/device_cdev.ts';
import { UserCalls } from '../../../models/vmm/backend-iommufd-uapi.ts';
import { ALLOC_PASID } from './nest-rig.ts';

function noPasidRig() {
  const m = new HostMachine({ frames: 1 << 14 });
  const task = m.k.createProcess('qemu');
  const dev = m.addPciDevice('nopasid0', 0x0300, { pasidBits: 0 });
  const { vdevs } = iommufd_stack_init(m);
  const ram = task.mm.mmap(0x10000, 'qemu:guest-ram');
  if (IS_ERR(ram)) throw new Error('mmap');
  const u = new UserCalls(m.sys, task);
  const ok = <T extends { rc: number; errno: number }>(r: T, what: string): T => {
    expect(r.rc, `${what} ${errname(r.errno)}`).toBeGreaterThanOrEqual(0);
    return r;
  };
  const ifd = ok(u.open('/dev/iommu'), 'open').rc;
  const ioas = ok(u.ioctl(ifd, IOMMU_IOAS_ALLOC, iommu_ioas_alloc, {}, 'size'), 'IOAS_ALLOC').out.out_ioas_id as number;
  ok(
    u.ioctl(ifd, IOMMU_IOAS_MAP, iommu_ioas_map, {
      flags: IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
      ioas_id: ioas,
      user_va: BigInt(ram),
      length: 0x10000n,
      iova: 0n,
    }, 'size'),
    'IOAS_MAP',
  );
  const dfd = ok(u.open('/dev/vfio/devices/vfio0'), 'cdev').rc;
  const devId = ok(u.ioctl(dfd, VFIO_DEVICE_BIND_IOMMUFD, vfio_device_bind_iommufd, { flags: 0, iommufd: ifd }, 'argsz'), 'BIND').out.out_devid as number;
  const hwptAlloc = (flags: number) =>
    u.ioctl(ifd, IOMMU_HWPT_ALLOC, iommu_hwpt_alloc, { flags, dev_id: devId, pt_id: ioas, data_type: 0, data_len: 0, data_uptr: 0n, fault_id: 0 }, 'size');
  const attach = (pt_id: number, pasid?: number) =>
    pasid === undefined
      ? u.ioctl(dfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, vfio_device_attach_iommufd_pt, { argsz: 12, flags: 0, pt_id })
      : u.ioctl(dfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, vfio_device_attach_iommufd_pt, { flags: VFIO_DEVICE_ATTACH_PASID, pt_id, pasid }, 'argsz');
  return { m, task, dev, vdevs, u, ifd, ioas, dfd, devId, hwptAlloc, attach, ok };
}

describe('iommufd_device_pasid (no_pasid)', () => {
  it('pasid_attach: a device without PASID capability: PASID attach → EINVAL', () => {
    const r = noPasidRig();
    expect(r.m.core.dev_iommu(r.dev.dev)!.max_pasids).toBe(0);
    const s2 = r.ok(r.hwptAlloc(ALLOC_PASID), 'pasid-compat HWPT').out.out_hwpt_id as number;
    // the RID attaches as on any device
    r.ok(r.attach(s2), 'RID attach');
    const idev = r.vdevs[0]!.iommufd_device!;
    const pasid = 100;

    // test_err_pasid_attach(EINVAL, pasid, hwpt): the kernel API the selftest driver calls
    const prev = r.m.k.current;
    r.m.k.current = r.task;
    let rc: number;
    try {
      rc = iommufd_device_attach(idev, pasid, { id: s2 });
    } finally {
      r.m.k.current = prev;
    }
    expect(errname(-rc)).toBe(errname(EINVAL));
    expect(idev.igroup.pasid_attach.has(pasid)).toBe(false);

    // and through the cdev
    const v = r.attach(s2, pasid);
    expect(v.rc).toBe(-1);
    expect(errname(v.errno)).toBe('EINVAL');
    expect(idev.igroup.pasid_attach.has(pasid)).toBe(false);
    expect(r.vdevs[0]!.pasids.has(pasid)).toBe(false);
    expect(pasidEntryOf(r.m.iommu, r.dev.info, pasid)?.present ?? false).toBe(false);

    // nothing leaks once closed
    expect(r.u.close(r.dfd).rc).toBe(0);
    expect(r.u.close(r.ifd).rc).toBe(0);
    expect(r.task.mm.pinnedPages).toBe(0);
  });
});
