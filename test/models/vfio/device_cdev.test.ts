/**
 * Design B's VFIO device cdev (drivers/vfio/device_cdev.c @ v6.15): BIND_IOMMUFD, ATTACH and
 * DETACH_IOMMUFD_PT with their argsz/flags/fd checks, and release unbinding the device.
 */
import { describe, expect, it } from 'vitest';
import { errname } from '../../../models/kernel/errno.ts';
import { vfio_device_attach_iommufd_pt, vfio_device_bind_iommufd, vfio_device_detach_iommufd_pt } from '../../../models/kernel/uapi/index.ts';
import { VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_BIND_IOMMUFD, VFIO_DEVICE_DETACH_IOMMUFD_PT } from '../../../models/kernel/uapi/ioctls/index.ts';
import type { IommufdCtx } from '../../../models/iommufd/iommufd_private.ts';
import { nestRig } from '../iommufd/nest-rig.ts';

const errOf = (r: { rc: number; errno: number }) => (r.rc < 0 ? errname(r.errno) : 'ok');

describe('/dev/vfio/devices/vfioN', () => {
  it('VFIO_DEVICE_BIND_IOMMUFD: bad argsz, flags or fd → EINVAL; a closed fd → EBADF; not an iommufd → EBADFD; a second bind → EINVAL', () => {
    const r = nestRig({ devices: 2 });
    const dfd = r.cdev(0);
    const other = r.cdev(1);
    const bind = (v: Record<string, number>) => r.u.ioctl(dfd, VFIO_DEVICE_BIND_IOMMUFD, vfio_device_bind_iommufd, { argsz: 16, flags: 0, iommufd: r.ifd.fd, ...v });
    expect(errOf(bind({ argsz: 15 }))).toBe('EINVAL');
    expect(errOf(bind({ flags: 1 }))).toBe('EINVAL');
    expect(errOf(bind({ iommufd: -1 }))).toBe('EINVAL');
    expect(errOf(bind({ iommufd: 99 }))).toBe('EBADF');
    expect(errOf(bind({ iommufd: other }))).toBe('EBADFD');
    // nothing but BIND works before the bind
    expect(errOf(r.attach(dfd, r.ifd.ioas))).toBe('EINVAL');
    const rec = r.m.sim.step(r.task.thread, '1', 'bind', () => {
      const b = bind({});
      expect(errOf(b)).toBe('ok');
      expect(b.out.out_devid).toBeGreaterThan(0);
    });
    expect(rec.ioctls[0]).toMatchObject({ name: 'VFIO_DEVICE_BIND_IOMMUFD', file: 'vfio-device-cdev', copiesFromUser: 1, bytesFromUser: 16, copiesToUser: 1, bytesToUser: 4 });
    expect(errOf(bind({}))).toBe('EINVAL');
    // a second open of the same cdev may not bind: the cdev path opens a device once
    const again = r.cdev(0);
    expect(errOf(r.u.ioctl(again, VFIO_DEVICE_BIND_IOMMUFD, vfio_device_bind_iommufd, { argsz: 16, flags: 0, iommufd: r.ifd.fd }))).toBe('EINVAL');
  });

  it('VFIO_DEVICE_ATTACH_IOMMUFD_PT / DETACH: argsz and flags checks; an IOAS attach copies the auto HWPT id back; re-attach replaces', () => {
    const r = nestRig();
    const dfd = r.cdev();
    const devId = r.ok(r.bind(dfd)).out.out_devid as number;
    const att = (v: Record<string, number>) => r.u.ioctl(dfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, vfio_device_attach_iommufd_pt, { argsz: 16, flags: 0, pt_id: r.ifd.ioas, ...v });
    const det = (v: Record<string, number>) => r.u.ioctl(dfd, VFIO_DEVICE_DETACH_IOMMUFD_PT, vfio_device_detach_iommufd_pt, { argsz: 12, flags: 0, ...v });
    expect(errOf(att({ argsz: 11 }))).toBe('EINVAL');
    expect(errOf(att({ flags: 2 }))).toBe('EINVAL');
    expect(errOf(att({ flags: 1, argsz: 12 }))).toBe('EINVAL'); // PASID needs the 16-byte form
    expect(errOf(att({ pt_id: 4242 }))).toBe('ENOENT');
    const a = att({ argsz: 12 });
    expect(errOf(a)).toBe('ok');
    const auto = a.out.pt_id as number;
    expect(auto).not.toBe(r.ifd.ioas); // the auto domain's HWPT id
    expect(r.devs[0]!.dev.driver).toBe('vfio-pci');
    // re-attaching replaces: onto an explicit HWPT, and the auto domain goes away
    const hwpt = r.ok(r.hwptAlloc(devId, r.ifd.ioas, 0)).id;
    expect(errOf(att({ argsz: 12, pt_id: hwpt }))).toBe('ok');
    expect(errname(r.destroy(auto).errno)).toBe('ENOENT');
    expect(errOf(det({ argsz: 7 }))).toBe('EINVAL');
    expect(errOf(det({ flags: 2 }))).toBe('EINVAL');
    expect(errOf(det({ flags: 1, argsz: 8 }))).toBe('EINVAL');
    expect(errOf(det({ flags: 1, pasid: 9 }))).toBe('ok'); // an unattached PASID: ignored
    expect(errOf(det({ argsz: 8 }))).toBe('ok');
    expect(r.destroy(hwpt).rc).toBe(0);
  });

  it('release unbinds: PASIDs and the RID are detached, the device object goes, the group returns to its default domain', () => {
    const r = nestRig();
    const a = r.assign();
    const nested = r.ok(r.hwptAlloc(a.devId, a.parent, 1 << 3, { root: r.pt.root })).id;
    r.ok(r.attach(a.dfd, nested, 5));
    const ictx = r.task.process.files.get(r.ifd.fd)!.private_data as IommufdCtx;
    expect(ictx.objects.size).toBe(4); // ioas, device, parent, nested
    expect(r.u.close(a.dfd).rc).toBe(0);
    expect(ictx.objects.size).toBe(3);
    expect(r.vdevs[0]!.iommufd_device).toBeNull();
    const group = r.m.core.iommu_group_get(r.devs[0]!.dev)!;
    expect(group.owner_cnt).toBe(0);
    expect(group.domain).toBe(group.default_domain);
    expect(r.destroy(nested).rc).toBe(0);
    expect(r.destroy(a.parent).rc).toBe(0);
    expect(r.u.close(r.ifd.fd).rc).toBe(0);
    expect(r.task.mm.pinnedPages).toBe(0);
    r.m.sim.leaks.assertClean('cdev release');
  });
});
