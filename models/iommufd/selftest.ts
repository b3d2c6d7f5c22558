import { kfn, type KFn } from '../../sim/index.ts';
import type { Device } from '../kernel/device.ts';
import { EINVAL, IS_ERR, PTR_ERR } from '../kernel/errno.ts';
import { IOMMU_NO_PASID } from '../iommu/types.ts';
import {
  iommufd_device_attach,
  iommufd_device_bind,
  iommufd_device_detach,
  iommufd_device_replace,
  iommufd_device_unbind,
  iommufd_selftest_register_mock_dev,
  type IommufdDevice,
} from './device.ts';
import {
  iommufd_get_object,
  iommufd_object_abort,
  iommufd_object_alloc,
  iommufd_object_finalize,
  iommufd_put_object,
  iommufd_register_object_ops,
  type IommufdCtx,
  type IommufdObject,
} from './iommufd_private.ts';

/**
 * The selftest's device driver (drivers/iommu/iommufd/selftest.c @ v6.15, CONFIG_IOMMUFD_TEST),
 * as a kernel API instead of the IOMMU_TEST_CMD ioctl.
 *
 * The kernel's IOMMU_TEST_OP_MOCK_DOMAIN creates a mock device on the mock IOMMU driver
 * (mock_dev_create), binds it with iommufd_device_bind, attaches it to pt_id and returns
 * {out_stdev_id, out_hwpt_id, out_idev_id}; the SELFTEST object owns the binding, and destroying
 * it (IOMMU_DESTROY of stdev_id, or close) detaches and unbinds. Ours does the same with a real
 * PCI function behind the emulated Intel VT-d (HostMachine.addPciDevice): the HWPTs are real
 * dmar_domains whose second stage the hardware walks, so what the selftest checks through
 * MD_CHECK_MAP (the mock domain's xarray) is checked here by DMA. There is no mock IOMMU: GET_HW_INFO
 * returns iommu_hw_info_vtd, not iommu_test_hw_info, and HWPT_DATA_SELFTEST is IOMMU_HWPT_DATA_VTD_S1.
 */
const SRC = 'drivers/iommu/iommufd/selftest.c @ v6.15';
const fn = (name: string, sig: string): KFn => kfn({ name, layer: 'iommufd', sig, prov: { kind: 'merged', source: SRC } });

const FN = {
  destroy: fn('iommufd_selftest_destroy', 'static void iommufd_selftest_destroy(struct iommufd_object *obj)'),
  mock_domain: fn('iommufd_test_mock_domain', 'static int iommufd_test_mock_domain(struct iommufd_ucmd *ucmd, struct iommu_test_cmd *cmd)'),
  replace: fn('iommufd_test_mock_domain_replace', 'static int iommufd_test_mock_domain_replace(struct iommufd_ucmd *ucmd, unsigned int device_id, u32 pt_id, struct iommu_test_cmd *cmd)'),
};

/** struct selftest_obj (TYPE_IDEV) */
export interface SelftestObj extends IommufdObject {
  readonly type: 'SELFTEST';
  /** the bound device; null until iommufd_device_bind succeeded */
  idev: IommufdDevice | null;
  readonly dev: Device;
}

function iommufd_selftest_destroy(obj: IommufdObject): void {
  const sobj = obj as SelftestObj;
  obj.ictx.k.sim.call(FN.destroy, () => {
    iommufd_device_detach(sobj.idev!, IOMMU_NO_PASID);
    iommufd_device_unbind(sobj.idev!);
    // mock_dev_destroy: the PCI function stays on the machine, it is only no longer ours
    iommufd_selftest_register_mock_dev(sobj.dev, false);
  });
}

iommufd_register_object_ops('SELFTEST', { destroy: iommufd_selftest_destroy });

export interface MockDomain {
  rc: number;
  stdev_id: number;
  hwpt_id: number;
  idev_id: number;
}

/**
 * IOMMU_TEST_OP_MOCK_DOMAIN with `dev` as the mock device: bind it to the ictx and attach its
 * RID to pt_id (an IOAS: auto domain; or an HWPT). On success the ids are those the selftest gets
 * back (a fresh fd: ioas 1, stdev 2, idev 3, hwpt 4).
 */
export function iommufd_test_mock_domain(ictx: IommufdCtx, dev: Device, pt_id: number): MockDomain {
  return ictx.k.sim.call(FN.mock_domain, () => {
    const out: MockDomain = { rc: 0, stdev_id: 0, hwpt_id: 0, idev_id: 0 };
    const sobj = iommufd_object_alloc<SelftestObj>(ictx, 'SELFTEST', () => ({ type: 'SELFTEST' as const, idev: null, dev }));
    if (IS_ERR(sobj)) return { ...out, rc: PTR_ERR(sobj) };
    // mock_dev_create
    iommufd_selftest_register_mock_dev(dev, true);
    const id = { id: 0 };
    const idev = iommufd_device_bind(ictx, dev, id);
    if (IS_ERR(idev)) {
      iommufd_selftest_register_mock_dev(dev, false);
      iommufd_object_abort(ictx, sobj);
      return { ...out, rc: PTR_ERR(idev) };
    }
    sobj.idev = idev;
    const pt = { id: pt_id };
    const rc = iommufd_device_attach(idev, IOMMU_NO_PASID, pt);
    if (rc) {
      iommufd_device_unbind(idev);
      iommufd_selftest_register_mock_dev(dev, false);
      iommufd_object_abort(ictx, sobj);
      return { ...out, rc };
    }
    // iommufd_ucmd_respond: the kernel API returns the ids directly
    iommufd_object_finalize(ictx, sobj);
    return { rc: 0, stdev_id: sobj.id, hwpt_id: pt.id, idev_id: id.id };
  });
}

/** IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE: iommufd_device_replace of the stdev's device; returns the new pt id. */
export function iommufd_test_mock_domain_replace(ictx: IommufdCtx, stdev_id: number, pt_id: number): { rc: number; pt_id: number } {
  return ictx.k.sim.call(FN.replace, () => {
    const dev_obj = iommufd_get_object(ictx, stdev_id, 'SELFTEST');
    if (IS_ERR(dev_obj)) return { rc: PTR_ERR(dev_obj), pt_id: 0 };
    const sobj = dev_obj as SelftestObj;
    const pt = { id: pt_id };
    const rc = sobj.idev ? iommufd_device_replace(sobj.idev, IOMMU_NO_PASID, pt) : -EINVAL;
    iommufd_put_object(ictx, dev_obj);
    return { rc, pt_id: rc ? 0 : pt.id };
  });
}
