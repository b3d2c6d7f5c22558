import { _IO, _IOR, _IOW, _IOWR } from '../../ioctl.ts';

/** vhost and vhost-vdpa ioctls (include/uapi/linux/vhost.h), VHOST_VIRTIO 0xAF. */
export const VHOST_VIRTIO = 0xaf;
export const VHOST_SET_OWNER = _IO(VHOST_VIRTIO, 0x01);
export const VHOST_SET_BACKEND_FEATURES = _IOW(VHOST_VIRTIO, 0x25, 8);
export const VHOST_GET_BACKEND_FEATURES = _IOR(VHOST_VIRTIO, 0x26, 8);
export const VHOST_VDPA_GET_DEVICE_ID = _IOR(VHOST_VIRTIO, 0x70, 4);
export const VHOST_VDPA_GET_IOVA_RANGE = _IOR(VHOST_VIRTIO, 0x78, 16);
export const VHOST_VDPA_GET_AS_NUM = _IOR(VHOST_VIRTIO, 0x7a, 4);
export const VHOST_VDPA_GET_VRING_GROUP = _IOWR(VHOST_VIRTIO, 0x7b, 8);
export const VHOST_VDPA_SET_GROUP_ASID = _IOW(VHOST_VIRTIO, 0x7c, 8);
export const VHOST_VDPA_GET_VQS_COUNT = _IOR(VHOST_VIRTIO, 0x80, 4);
export const VHOST_VDPA_GET_GROUP_NUM = _IOR(VHOST_VIRTIO, 0x81, 4);

/** Design B projection: Cindy Lu's 2023 RFC (vhost-iommufd-rfc.ts), never merged */
export const VHOST_VDPA_SET_IOMMU_FD = _IOW(VHOST_VIRTIO, 0x7e, 20);
export const VDPA_DEVICE_ATTACH_IOMMUFD_AS = _IOW(VHOST_VIRTIO, 0x7f, 12);
export const VDPA_DEVICE_DETACH_IOMMUFD_AS = _IOW(VHOST_VIRTIO, 0x83, 8);

/**
 * Design A projection (never posted): the vhost-vdpa port of v8's transport that Jean-Philippe
 * Brucker and Kevin Tian proposed in the v7 thread (vhost_vdpa_tunnel.ts). GET_NESTING_INFO takes
 * struct iommu_nesting_info (64 B); NESTING_OP takes the same {argsz, flags, data[]} 8-byte header
 * as VFIO_IOMMU_NESTING_OP, declared with its header size as vhost.h does for flex structs.
 */
export const VHOST_VDPA_GET_NESTING_INFO = _IOWR(VHOST_VIRTIO, 0x90, 64);
export const VHOST_VDPA_NESTING_OP = _IOW(VHOST_VIRTIO, 0x91, 8);
