/**
 * Design B: the VFIO device cdev (/dev/vfio/devices/vfioN) uAPI, include/uapi/linux/vfio.h @ v6.15.
 *
 * Read from the v6.15 PASID-attach patches (which add `pasid` to attach/detach) and checked
 * against newer trees: after 6.15, bind gains `token_uuid_ptr` (24 B); in 6.15 it is 16 B.
 *
 * ioctl facts: on a device fd, `_IO(VFIO_TYPE, VFIO_BASE + n)`: DEVICE_FEATURE +17,
 * DEVICE_BIND_IOMMUFD +18 (0x3b76), DEVICE_ATTACH_IOMMUFD_PT +19, DEVICE_DETACH_IOMMUFD_PT +20.
 */
import { defineStruct, flex, s32, u32, type HeaderOrigin } from '../dsl.ts';

export const VFIO_H_V6_15: HeaderOrigin = {
  header: 'include/uapi/linux/vfio.h',
  design: 'B',
  source: {
    kind: 'merged',
    era: 'v6.15',
    ref: 'v6.15',
    note: 'VFIO cdev structs with the 6.15 PASID attach/detach members',
  },
};

export const vfio_device_bind_iommufd = defineStruct('vfio_device_bind_iommufd', VFIO_H_V6_15, [
  u32('argsz'),
  u32('flags'),
  s32('iommufd'),
  u32('out_devid'),
]);

export const VFIO_DEVICE_ATTACH_PASID = 1 << 0;

/** minsz is offsetofend(pt_id) = 12; `pasid` is read only with VFIO_DEVICE_ATTACH_PASID. */
export const vfio_device_attach_iommufd_pt = defineStruct('vfio_device_attach_iommufd_pt', VFIO_H_V6_15, [
  u32('argsz'),
  u32('flags'),
  u32('pt_id'),
  u32('pasid'),
]);

export const VFIO_DEVICE_DETACH_PASID = 1 << 0;

/** minsz is offsetofend(flags) = 8; `pasid` is read only with VFIO_DEVICE_DETACH_PASID. */
export const vfio_device_detach_iommufd_pt = defineStruct('vfio_device_detach_iommufd_pt', VFIO_H_V6_15, [
  u32('argsz'),
  u32('flags'),
  u32('pasid'),
]);

export const VFIO_DEVICE_FEATURE_MASK = 0xffff;
export const VFIO_DEVICE_FEATURE_GET = 1 << 16;
export const VFIO_DEVICE_FEATURE_SET = 1 << 17;
export const VFIO_DEVICE_FEATURE_PROBE = 1 << 18;

/** The feature id sits in the low 16 bits of flags, which keeps data[] 8-byte aligned. */
export const vfio_device_feature = defineStruct('vfio_device_feature', VFIO_H_V6_15, [
  u32('argsz'),
  u32('flags'),
  flex('data', '__u8'),
]);

export const VFIO_CDEV_STRUCTS = [
  vfio_device_bind_iommufd,
  vfio_device_attach_iommufd_pt,
  vfio_device_detach_iommufd_pt,
  vfio_device_feature,
] as const;
