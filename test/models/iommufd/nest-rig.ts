import { expect } from 'vitest';
import { IS_ERR, errname } from '../../../models/kernel/errno.ts';
import {
  IOMMU_HWPT_DATA_VTD_S1,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  VFIO_DEVICE_ATTACH_PASID,
  VFIO_DEVICE_DETACH_PASID,
  encode,
  iommu_destroy,
  iommu_fault_alloc,
  iommu_hwpt_alloc,
  iommu_hwpt_vtd_s1,
  iommu_ioas_alloc,
  iommu_ioas_map,
  vfio_device_attach_iommufd_pt,
  vfio_device_bind_iommufd,
  vfio_device_detach_iommufd_pt,
} from '../../../models/kernel/uapi/index.ts';
import {
  IOMMU_DESTROY,
  IOMMU_FAULT_QUEUE_ALLOC,
  IOMMU_HWPT_ALLOC,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_MAP,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_DETACH_IOMMUFD_PT,
} from '../../../models/kernel/uapi/ioctls/index.ts';
import { HostMachine, type HostOptions } from '../../../models/machine/host.ts';
import { iommufd_stack_init } from '../../../models/vfio/device_cdev.ts';
import { UserCalls } from '../../../models/vmm/backend-iommufd-uapi.ts';
import { vmmGuestTables } from '../../helpers/vmm-guest-tables.ts';

export const GUEST_VA = 0x7f00_0000_0000;
/** the guest page GUEST_VA maps to, and a second one for replaced tables */
export const DATA_GPA = 0x10_0000;
export const DATA2_GPA = 0x20_0000;
export const NEST_PARENT = 1 << 0;
export const FAULT_ID_VALID = 1 << 2;
export const ALLOC_PASID = 1 << 3;

/**
 * Design B on a HostMachine: iommufd + the VFIO cdevs loaded, a VMM process ("qemu") with guest
 * RAM mapped in one IOAS at IOVA = GPA, and guest first-stage tables built inside that RAM through
 * the VMM's frames (as a guest kernel writes them). Every step is a real syscall with its struct
 * encoded in the VMM's memory.
 */
export function nestRig(opts: HostOptions & { pri?: boolean; ats?: boolean; isVirtfn?: boolean; ramSize?: number; devices?: number } = {}) {
  const m = new HostMachine({ frames: 1 << 16, ...opts });
  const task = m.k.createProcess('qemu');
  const devs = Array.from({ length: opts.devices ?? 1 }, (_, i) =>
    m.addPciDevice(`dsa${i}`, 0x0300 + i * 8, { pasidBits: 20, ats: opts.ats ?? false, pri: opts.pri ?? false, isVirtfn: opts.isVirtfn ?? false }),
  );
  const { mod, vdevs } = iommufd_stack_init(m);
  const ramSize = opts.ramSize ?? 4 << 20;
  const ram = task.mm.mmap(ramSize, 'qemu:guest-ram');
  if (IS_ERR(ram)) throw new Error('mmap guest RAM');
  const u = new UserCalls(m.sys, task);
  const { firstStage } = vmmGuestTables(m, task, ram, ramSize);
  const pt = firstStage();
  pt.map(GUEST_VA, DATA_GPA, 0x8000);
  const readGuest = (gpa: number, len: number) => u.read(ram + gpa, len);

  const ok = <T extends { rc: number; errno: number }>(r: T, what = ''): T => {
    expect(r.rc, `${what} ${errname(r.errno)}`).toBeGreaterThanOrEqual(0);
    return r;
  };

  /** open /dev/iommu, IOAS_ALLOC, IOAS_MAP of all guest RAM at IOVA 0 */
  const openIommufd = () => {
    const fd = ok(u.open('/dev/iommu')).rc;
    const ioas = ok(u.ioctl(fd, IOMMU_IOAS_ALLOC, iommu_ioas_alloc, {}, 'size')).out.out_ioas_id as number;
    ok(
      u.ioctl(fd, IOMMU_IOAS_MAP, iommu_ioas_map, {
        flags: IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
        ioas_id: ioas,
        user_va: BigInt(ram),
        length: BigInt(ramSize),
        iova: 0n,
      }, 'size'),
      'IOAS_MAP',
    );
    return { fd, ioas };
  };

  const ifd = openIommufd();
  const cdev = (i = 0) => ok(u.open(`/dev/vfio/devices/vfio${i}`)).rc;
  const bind = (dfd: number, iommufd = ifd.fd) => u.ioctl(dfd, VFIO_DEVICE_BIND_IOMMUFD, vfio_device_bind_iommufd, { flags: 0, iommufd }, 'argsz');
  const attach = (dfd: number, pt_id: number, pasid?: number) =>
    pasid === undefined
      ? u.ioctl(dfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, vfio_device_attach_iommufd_pt, { argsz: 12, flags: 0, pt_id })
      : u.ioctl(dfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, vfio_device_attach_iommufd_pt, { flags: VFIO_DEVICE_ATTACH_PASID, pt_id, pasid }, 'argsz');
  const detach = (dfd: number, pasid?: number) =>
    pasid === undefined
      ? u.ioctl(dfd, VFIO_DEVICE_DETACH_IOMMUFD_PT, vfio_device_detach_iommufd_pt, { argsz: 8, flags: 0 })
      : u.ioctl(dfd, VFIO_DEVICE_DETACH_IOMMUFD_PT, vfio_device_detach_iommufd_pt, { flags: VFIO_DEVICE_DETACH_PASID, pasid }, 'argsz');
  const hwptAlloc = (dev_id: number, pt_id: number, flags: number, extra: { root?: number; fault_id?: number } = {}) => {
    const data = extra.root === undefined ? null : encode(iommu_hwpt_vtd_s1, { flags: 0n, pgtbl_addr: BigInt(extra.root), addr_width: 48 });
    const at = data ? u.putBytes(data) : 0;
    const r = u.ioctl(ifd.fd, IOMMU_HWPT_ALLOC, iommu_hwpt_alloc, {
      flags,
      dev_id,
      pt_id,
      data_type: data ? IOMMU_HWPT_DATA_VTD_S1 : 0,
      data_len: data?.length ?? 0,
      data_uptr: BigInt(at),
      fault_id: extra.fault_id ?? 0,
    }, 'size');
    return { rc: r.rc, errno: r.errno, id: r.out.out_hwpt_id as number };
  };
  const destroy = (id: number) => u.ioctl(ifd.fd, IOMMU_DESTROY, iommu_destroy, { id }, 'size');
  const faultAlloc = () => {
    const r = ok(u.ioctl(ifd.fd, IOMMU_FAULT_QUEUE_ALLOC, iommu_fault_alloc, { flags: 0 }, 'size'), 'FAULT_QUEUE_ALLOC');
    return { id: r.out.out_fault_id as number, fd: r.out.out_fault_fd as number };
  };

  /** cdev open + bind + a NEST_PARENT|ALLOC_PASID parent + RID attach: what assign does */
  const assign = (i = 0) => {
    const dfd = cdev(i);
    const devId = ok(bind(dfd), 'BIND').out.out_devid as number;
    const parent = hwptAlloc(devId, ifd.ioas, NEST_PARENT | ALLOC_PASID);
    ok(parent, 'parent');
    ok(attach(dfd, parent.id), 'RID attach');
    return { dfd, devId, parent: parent.id };
  };

  return { m, task, devs, mod, vdevs, ram, ramSize, u, pt, firstStage, readGuest, ifd, cdev, bind, attach, detach, hwptAlloc, destroy, faultAlloc, assign, ok };
}

export type NestRig = ReturnType<typeof nestRig>;
