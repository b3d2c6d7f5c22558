import { describe, expect, it } from 'vitest';
import { EBUSY, EINVAL } from '../../../models/kernel/errno.ts';
import { decode, ioasid_alloc_request, ioasid_info } from '../../../models/kernel/uapi/index.ts';
import {
  IOASID_GET_API_VERSION,
  IOASID_GET_INFO,
  IOASID_REQUEST_ALLOC,
  IOASID_REQUEST_FREE,
  ioasid_live_ids,
} from '../../../models/iommu/ioasid.ts';
import { tunnelRig } from '../vfio/tunnel-rig.ts';

describe('/dev/ioasid (IOASID V4 18/18)', () => {
  it('allocates exactly the PASID asked for, and EINVAL once none is left in the range', () => {
    const r = tunnelRig();
    const fd = r.sys.open(r.task, '/dev/ioasid');
    const req = (min: number, max: number) => r.put(ioasid_alloc_request, { argsz: 16, flags: 0, range: { min, max } });
    expect(r.ioctl(fd, IOASID_GET_API_VERSION, 0)).toBe(0);
    const info = r.put(ioasid_info, { argsz: 12, flags: 0, ioasid_bits: 0 });
    expect(r.ioctl(fd, IOASID_GET_INFO, info)).toBe(0);
    expect(decode(ioasid_info, r.readBytes(info, 12)).ioasid_bits).toBe(31);
    const rec = r.m.sim.step(r.task.thread, '1', 'alloc', () => expect(r.ioctl(fd, IOASID_REQUEST_ALLOC, req(5, 5))).toBe(5));
    expect(rec.ioctls[0]).toMatchObject({ name: 'IOASID_REQUEST_ALLOC', file: 'ioasid', ret: 5, copiesFromUser: 1, bytesFromUser: 16 });
    // vPASID == pPASID: the same exact range again cannot be satisfied
    expect(r.ioctl(fd, IOASID_REQUEST_ALLOC, req(5, 5))).toBe(-1);
    expect(r.task.errno).toBe(EINVAL);
    expect(r.ioctl(fd, IOASID_REQUEST_ALLOC, req(6, 5))).toBe(-1);
    expect(r.task.errno).toBe(EINVAL);
    expect(r.ioctl(fd, IOASID_REQUEST_ALLOC, req(0, 2 ** 31))).toBe(-1);
    expect(r.task.errno).toBe(EINVAL);
    // FREE takes a plain int; the PASID can be had again
    expect(r.ioctl(fd, IOASID_REQUEST_FREE, r.int(5))).toBe(0);
    expect(r.ioctl(fd, IOASID_REQUEST_ALLOC, req(5, 5))).toBe(5);
    expect(r.ioctl(fd, IOASID_REQUEST_FREE, r.int(-1))).toBe(-1);
    expect(r.task.errno).toBe(EINVAL);
  });

  it('refuses a second open by the same process (EBUSY) but not by another process', () => {
    const r = tunnelRig();
    const fd = r.sys.open(r.task, '/dev/ioasid');
    expect(fd).toBeGreaterThanOrEqual(0);
    expect(r.sys.open(r.task, '/dev/ioasid')).toBe(-1);
    expect(r.task.errno).toBe(EBUSY);
    // another thread of the same process shares the mm: also EBUSY
    const t2 = r.m.k.addTask(r.task.process, 'vcpu1');
    expect(r.sys.open(t2, '/dev/ioasid')).toBe(-1);
    expect(t2.errno).toBe(EBUSY);
    const other = r.m.k.createProcess('other-vmm');
    expect(r.sys.open(other, '/dev/ioasid')).toBeGreaterThanOrEqual(0);
  });

  it('returns EINVAL for an unknown ioctl (JGG asked for ENOTTY)', () => {
    const r = tunnelRig();
    const fd = r.sys.open(r.task, '/dev/ioasid');
    expect(r.ioctl(fd, 0x3b64, 0)).toBe(-1);
    expect(r.task.errno).toBe(EINVAL);
  });

  it('frees every PASID of the process when its fd is released', () => {
    const r = tunnelRig();
    const fd = r.sys.open(r.task, '/dev/ioasid');
    for (const p of [5, 9, 12]) expect(r.ioctl(fd, IOASID_REQUEST_ALLOC, r.put(ioasid_alloc_request, { argsz: 16, flags: 0, range: { min: p, max: p } }))).toBe(p);
    expect(ioasid_live_ids(r.m.k)).toEqual([5, 9, 12]);
    expect(r.sys.close(r.task, fd)).toBe(0);
    expect(ioasid_live_ids(r.m.k)).toEqual([]);
    r.m.sim.leaks.assertClean();
  });
});
