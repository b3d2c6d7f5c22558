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
