/**
 * Design A: Jacob Pan's /dev/ioasid PASID allocator, "[PATCH V4 18/18] ioasid: Add /dev/ioasid for
 * userspace" (<1614463286-97618-19-git-send-email-jacob.jun.pan@linux.intel.com>, Feb 2021),
 * include/uapi/linux/ioasid.h. Posted, never merged. v8 gets its PASIDs here (vPASID == pPASID).
 *
 * The mail itself is not in the reference corpus; the header text was read in Intel's DCP tree
 * (isabella232/linux-kernel-dcp@fff9fab2a63cfb869e84ad45fb60931c8ac4ce49), which carries the same
 * two structs the reference notes describe (ioasid_info 12 B, ioasid_alloc_request 16 B).
 *
 * ioctl facts: IOASID_TYPE 'i', IOASID_BASE 100, all `_IO`: GET_API_VERSION +0, GET_INFO +1,
 * REQUEST_ALLOC +2 (returns the PASID), REQUEST_FREE +3 (argument: int PASID).
 */
import { defineStruct, inlineStruct, u32, type HeaderOrigin } from '../dsl.ts';

export const IOASID_H_V4: HeaderOrigin = {
  header: 'include/uapi/linux/ioasid.h',
  design: 'A',
  source: {
    kind: 'posted',
    era: 'ioasid V4 18/18',
    ref: '<1614463286-97618-19-git-send-email-jacob.jun.pan@linux.intel.com>',
    readAt: 'isabella232/linux-kernel-dcp@fff9fab2a63cfb869e84ad45fb60931c8ac4ce49',
    note: '[PATCH V4 18/18] ioasid: Add /dev/ioasid for userspace',
  },
};

export const IOASID_API_VERSION = 0;

export const ioasid_info = defineStruct('ioasid_info', IOASID_H_V4, [
  u32('argsz'),
  u32('flags'),
  u32('ioasid_bits'),
]);

/** range is [min, max], both inclusive */
export const ioasid_alloc_request = defineStruct('ioasid_alloc_request', IOASID_H_V4, [
  u32('argsz'),
  u32('flags'),
  inlineStruct('range', [u32('min'), u32('max')]),
]);

export const IOASID_STRUCTS = [ioasid_info, ioasid_alloc_request] as const;
