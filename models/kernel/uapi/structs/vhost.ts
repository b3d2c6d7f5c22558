/**
 * vhost-vdpa's uAPI (include/uapi/linux/vhost_types.h, vhost.h), which the vDPA side of both designs
 * starts from: vring groups, address spaces (ASIDs) and the IOTLB messages a VMM writes to map
 * guest memory. Read at torvalds/linux@0723f1df (the layouts have not changed since v5.13).
 *
 * ioctl facts (VHOST_VIRTIO = 0xAF): VHOST_SET_OWNER _IO 0x01; VHOST_SET_BACKEND_FEATURES _IOW
 * 0x25 u64; VHOST_GET_BACKEND_FEATURES _IOR 0x26 u64; VHOST_VDPA_GET_DEVICE_ID _IOR 0x70 u32;
 * VHOST_VDPA_GET_IOVA_RANGE _IOR 0x78; VHOST_VDPA_GET_AS_NUM _IOR 0x7A unsigned int;
 * VHOST_VDPA_GET_VRING_GROUP _IOWR 0x7B vhost_vring_state; VHOST_VDPA_SET_GROUP_ASID _IOW 0x7C
 * vhost_vring_state; VHOST_VDPA_GET_VQS_COUNT _IOR 0x80 u32; VHOST_VDPA_GET_GROUP_NUM _IOR 0x81 u32.
 */
import { array, defineStruct, member, u32, u64, u8, union, type HeaderOrigin } from '../dsl.ts';

export const VHOST_TYPES_H: HeaderOrigin = {
  header: 'include/uapi/linux/vhost_types.h',
  design: 'both',
  source: { kind: 'merged', era: 'v6.15', ref: 'v6.15', note: 'read at torvalds/linux@0723f1df; unchanged since v5.13 (ASID support)' },
};

export const vhost_vring_state = defineStruct('vhost_vring_state', VHOST_TYPES_H, [u32('index'), u32('num')]);

/** VHOST_ACCESS_* (perm) and VHOST_IOTLB_* (type) */
export const VHOST_ACCESS_RO = 0x1;
export const VHOST_ACCESS_WO = 0x2;
export const VHOST_ACCESS_RW = 0x3;
export const VHOST_IOTLB_MISS = 1;
export const VHOST_IOTLB_UPDATE = 2;
export const VHOST_IOTLB_INVALIDATE = 3;
export const VHOST_IOTLB_ACCESS_FAIL = 4;
export const VHOST_IOTLB_BATCH_BEGIN = 5;
export const VHOST_IOTLB_BATCH_END = 6;
export const VHOST_IOTLB_MSG_V2 = 0x2;

/** VHOST_BACKEND_F_* feature bit numbers */
export const VHOST_BACKEND_F_IOTLB_MSG_V2 = 0x1;
export const VHOST_BACKEND_F_IOTLB_BATCH = 0x2;
export const VHOST_BACKEND_F_IOTLB_ASID = 0x3;

/** plain __u64 members: 8-aligned on x86_64 anyway, so the struct is 32 B */
export const vhost_iotlb_msg = defineStruct('vhost_iotlb_msg', VHOST_TYPES_H, [
  u64('iova'),
  u64('size'),
  u64('uaddr'),
  u8('perm'),
  u8('type'),
]);

/** what a VMM write()s to the vhost-vdpa fd: 72 B */
export const vhost_msg_v2 = defineStruct('vhost_msg_v2', VHOST_TYPES_H, [
  u32('type'),
  u32('asid'),
  union(undefined, [member('iotlb', vhost_iotlb_msg), array('padding', '__u8', 64)]),
]);

export const vhost_vdpa_iova_range = defineStruct('vhost_vdpa_iova_range', VHOST_TYPES_H, [u64('first'), u64('last')]);

export const VHOST_STRUCTS = [vhost_vring_state, vhost_iotlb_msg, vhost_msg_v2, vhost_vdpa_iova_range] as const;
