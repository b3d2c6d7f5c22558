import { _IO, _IOC_NR, _IOC_TYPE } from '../../ioctl.ts';

/**
 * The ioctl numbers of /dev/iommu, as data from include/uapi/linux/iommufd.h @ v6.15: every command
 * is `_IO(IOMMUFD_TYPE, IOMMUFD_CMD_*)`, the enum starting at IOMMUFD_CMD_BASE. The ioctl macro of
 * IOMMUFD_CMD_X is IOMMU_X. The numbers carry no size: the struct size travels in its first u32.
 */
export const IOMMUFD_TYPE = ';'.charCodeAt(0);
export const IOMMUFD_CMD_BASE = 0x80;

/** enum { IOMMUFD_CMD_BASE = 0x80, IOMMUFD_CMD_DESTROY = IOMMUFD_CMD_BASE, … } in header order */
export const IOMMUFD_CMDS = [
  'IOMMUFD_CMD_DESTROY',
  'IOMMUFD_CMD_IOAS_ALLOC',
  'IOMMUFD_CMD_IOAS_ALLOW_IOVAS',
  'IOMMUFD_CMD_IOAS_COPY',
  'IOMMUFD_CMD_IOAS_IOVA_RANGES',
  'IOMMUFD_CMD_IOAS_MAP',
  'IOMMUFD_CMD_IOAS_UNMAP',
  'IOMMUFD_CMD_OPTION',
  'IOMMUFD_CMD_VFIO_IOAS',
  'IOMMUFD_CMD_HWPT_ALLOC',
  'IOMMUFD_CMD_GET_HW_INFO',
  'IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING',
  'IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP',
  'IOMMUFD_CMD_HWPT_INVALIDATE',
  'IOMMUFD_CMD_FAULT_QUEUE_ALLOC',
  'IOMMUFD_CMD_IOAS_MAP_FILE',
  'IOMMUFD_CMD_VIOMMU_ALLOC',
  'IOMMUFD_CMD_VDEVICE_ALLOC',
  'IOMMUFD_CMD_IOAS_CHANGE_PROCESS',
  'IOMMUFD_CMD_VEVENTQ_ALLOC',
] as const;

export type IommufdCmdName = (typeof IOMMUFD_CMDS)[number];
/** "IOMMU_IOAS_MAP" for IOMMUFD_CMD_IOAS_MAP */
export type IommufdIoctlName = IommufdCmdName extends `IOMMUFD_CMD_${infer S}` ? `IOMMU_${S}` : never;

/** IOMMUFD_CMD_* → nr */
export const IOMMUFD_CMD = Object.freeze(
  Object.fromEntries(IOMMUFD_CMDS.map((n, i) => [n.slice('IOMMUFD_CMD_'.length), IOMMUFD_CMD_BASE + i])) as {
    readonly [K in IommufdCmdName as K extends `IOMMUFD_CMD_${infer S}` ? S : never]: number;
  },
);

/** IOMMU_* → the ioctl number: `_IO(IOMMUFD_TYPE, IOMMUFD_CMD_*)` */
export const IOMMU_IOCTL = Object.freeze(
  Object.fromEntries(IOMMUFD_CMDS.map((n, i) => [ioctlNameOf(n), _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + i)])) as {
    readonly [K in IommufdIoctlName]: number;
  },
);

function ioctlNameOf(cmd: IommufdCmdName): IommufdIoctlName {
  return `IOMMU_${cmd.slice('IOMMUFD_CMD_'.length)}` as IommufdIoctlName;
}

/** The header's name of an ioctl number on /dev/iommu, or undefined. */
export function iommufd_ioctl_name(cmd: number): IommufdIoctlName | undefined {
  if (_IOC_TYPE(cmd) !== IOMMUFD_TYPE) return undefined;
  const name = IOMMUFD_CMDS[_IOC_NR(cmd) - IOMMUFD_CMD_BASE];
  if (!name || (cmd >>> 0) !== _IO(IOMMUFD_TYPE, _IOC_NR(cmd))) return undefined;
  return ioctlNameOf(name);
}

export const IOMMU_DESTROY = IOMMU_IOCTL.IOMMU_DESTROY;
export const IOMMU_IOAS_ALLOC = IOMMU_IOCTL.IOMMU_IOAS_ALLOC;
export const IOMMU_IOAS_ALLOW_IOVAS = IOMMU_IOCTL.IOMMU_IOAS_ALLOW_IOVAS;
export const IOMMU_IOAS_COPY = IOMMU_IOCTL.IOMMU_IOAS_COPY;
export const IOMMU_IOAS_IOVA_RANGES = IOMMU_IOCTL.IOMMU_IOAS_IOVA_RANGES;
export const IOMMU_IOAS_MAP = IOMMU_IOCTL.IOMMU_IOAS_MAP;
export const IOMMU_IOAS_UNMAP = IOMMU_IOCTL.IOMMU_IOAS_UNMAP;
export const IOMMU_OPTION = IOMMU_IOCTL.IOMMU_OPTION;
export const IOMMU_VFIO_IOAS = IOMMU_IOCTL.IOMMU_VFIO_IOAS;
export const IOMMU_HWPT_ALLOC = IOMMU_IOCTL.IOMMU_HWPT_ALLOC;
export const IOMMU_GET_HW_INFO = IOMMU_IOCTL.IOMMU_GET_HW_INFO;
export const IOMMU_HWPT_INVALIDATE = IOMMU_IOCTL.IOMMU_HWPT_INVALIDATE;
export const IOMMU_FAULT_QUEUE_ALLOC = IOMMU_IOCTL.IOMMU_FAULT_QUEUE_ALLOC;
