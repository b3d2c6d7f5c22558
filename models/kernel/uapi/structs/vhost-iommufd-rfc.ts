/**
 * Design B's vhost-vdpa uAPI: Cindy Lu's RFC "vhost: Add 3 new uapi to support iommufd" (posted,
 * never merged), include/uapi/linux/vhost.h. Read from the RFC 3/7 mail of 23 Sep 2023
 * (<20230923170540.1447301-4-lulu@redhat.com>); RFC v1 3/8 of 4 Nov 2023 repeats the same structs.
 *
 * ioctl facts (VHOST_VIRTIO 0xAF): VHOST_VDPA_SET_IOMMU_FD _IOW 0x7e struct vhost_vdpa_set_iommufd;
 * VDPA_DEVICE_ATTACH_IOMMUFD_AS _IOW 0x7f; VDPA_DEVICE_DETACH_IOMMUFD_AS _IOW 0x83.
 */
import { defineStruct, s32, u32, type HeaderOrigin } from '../dsl.ts';

export const VHOST_H_IOMMUFD_RFC: HeaderOrigin = {
  header: 'include/uapi/linux/vhost.h',
  design: 'B',
  source: {
    kind: 'posted',
    era: 'vdpa iommufd RFC 3/7',
    ref: '<20230923170540.1447301-4-lulu@redhat.com>',
    note: '[RFC 3/7] vhost: Add 3 new uapi to support iommufd (Cindy Lu, 2023)',
  },
};

/** iommufd −1 unsets; minsz is offsetofend(ioas_id) = 12, the two out ids are copied back (8 B). */
export const vhost_vdpa_set_iommufd = defineStruct('vhost_vdpa_set_iommufd', VHOST_H_IOMMUFD_RFC, [
  s32('iommufd'),
  u32('group_id'),
  u32('ioas_id'),
  u32('out_dev_id'),
  u32('out_hwpt_id'),
]);

export const vdpa_device_attach_iommufd_as = defineStruct('vdpa_device_attach_iommufd_as', VHOST_H_IOMMUFD_RFC, [
  u32('argsz'),
  u32('flags'),
  u32('ioas_id'),
]);

export const vdpa_device_detach_iommufd_as = defineStruct('vdpa_device_detach_iommufd_as', VHOST_H_IOMMUFD_RFC, [u32('argsz'), u32('flags')]);

export const VHOST_IOMMUFD_RFC_STRUCTS = [vhost_vdpa_set_iommufd, vdpa_device_attach_iommufd_as, vdpa_device_detach_iommufd_as] as const;
