import { kfn, type KFn } from '../../sim/index.ts';
import { ENODEV, EOPNOTSUPP, IS_ERR, PTR_ERR } from '../kernel/errno.ts';
import { IOMMU_VFIO_IOAS_CLEAR, IOMMU_VFIO_IOAS_GET, IOMMU_VFIO_IOAS_SET, sizeOf } from '../kernel/uapi/index.ts';
import { iommufd_get_ioas } from './ioas.ts';
import { iommufd_put_object, iommufd_ucmd_respond, u32, type IommufdUcmd } from './iommufd_private.ts';

/**
 * IOMMU_VFIO_IOAS (drivers/iommu/iommufd/vfio_compat.c @ v6.15): which IOAS the VFIO type1
 * compatibility ioctls act on. Only this ioctl is modelled; the type1 ioctls themselves
 * (nr < IOMMUFD_CMD_BASE on the fd) are not, and fail with ENOTTY.
 */
const FN: KFn = kfn({
  name: 'iommufd_vfio_ioas',
  layer: 'iommufd',
  sig: 'int iommufd_vfio_ioas(struct iommufd_ucmd *ucmd)',
  prov: { kind: 'merged', source: 'drivers/iommu/iommufd/vfio_compat.c @ v6.15' },
  uapi: { param: 'ucmd->cmd', ctype: 'struct iommu_vfio_ioas *' },
});

export function iommufd_vfio_ioas(ucmd: IommufdUcmd): number {
  const { ictx, cmd } = ucmd;
  return ictx.k.sim.call(FN, () => {
    if (u32(cmd, '__reserved')) return -EOPNOTSUPP;
    switch (u32(cmd, 'op')) {
      case IOMMU_VFIO_IOAS_GET: {
        // get_compat_ioas: under xa_lock, not an id lookup
        const ioas = ictx.vfio_ioas;
        if (!ioas || ioas.users === 0) return -ENODEV;
        cmd.ioas_id = ioas.id;
        return iommufd_ucmd_respond(ucmd, sizeOf(ucmd.decl));
      }
      case IOMMU_VFIO_IOAS_SET: {
        const ioas = iommufd_get_ioas(ictx, u32(cmd, 'ioas_id'));
        if (IS_ERR(ioas)) return PTR_ERR(ioas);
        ictx.vfio_ioas = ioas;
        iommufd_put_object(ictx, ioas);
        return 0;
      }
      case IOMMU_VFIO_IOAS_CLEAR:
        ictx.vfio_ioas = null;
        return 0;
      default:
        return -EOPNOTSUPP;
    }
  });
}
