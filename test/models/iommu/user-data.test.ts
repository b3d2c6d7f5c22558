import { describe, expect, it } from 'vitest';
import { E2BIG, EFAULT, EINVAL } from '../../../models/kernel/errno.ts';
import { uptr } from '../../../models/kernel/mm.ts';
import { IOMMU_HWPT_DATA_VTD_S1, iommu_hwpt_vtd_s1 } from '../../../models/kernel/uapi/index.ts';
import { iommu_copy_struct_from_user } from '../../../models/iommu/user-data.ts';
import { bootHost } from '../../helpers/host.ts';

describe('iommu_copy_struct_from_user (include/linux/iommu.h)', () => {
  it('copies the driver struct; refuses another type, a short length and a longer one with EINVAL', () => {
    const { m, put, asTask } = bootHost();
    const at = put(iommu_hwpt_vtd_s1, { flags: 1, pgtbl_addr: 0x5000, addr_width: 48 });
    const copy = (type: number, len: number, ptr = at) =>
      asTask(() => iommu_copy_struct_from_user(m.k, iommu_hwpt_vtd_s1, { type, uptr: ptr, len }, IOMMU_HWPT_DATA_VTD_S1, '__reserved'));
    const good = copy(IOMMU_HWPT_DATA_VTD_S1, 24);
    expect(good.err).toBe(0);
    expect(good.val).toMatchObject({ flags: 1n, pgtbl_addr: 0x5000n, addr_width: 48 });
    expect(copy(2, 24).err).toBe(-EINVAL);
    expect(copy(IOMMU_HWPT_DATA_VTD_S1, 20).err).toBe(-EINVAL);
    // unlike copy_struct_from_user, a longer struct is EINVAL even with a zero tail (never E2BIG)
    expect(copy(IOMMU_HWPT_DATA_VTD_S1, 32).err).toBe(-EINVAL);
    expect(copy(IOMMU_HWPT_DATA_VTD_S1, 32).err).not.toBe(-E2BIG);
    expect(copy(IOMMU_HWPT_DATA_VTD_S1, 24, uptr(0x10)).err).toBe(-EFAULT);
  });
});
