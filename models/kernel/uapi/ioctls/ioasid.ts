import { _IO } from '../../ioctl.ts';

/** /dev/ioasid (Jacob Pan's V4 18/18, include/uapi/linux/ioasid.h): IOASID_TYPE 'i', base 100, all _IO. */
export const IOASID_TYPE = 0x69;
export const IOASID_BASE = 100;
export const IOASID_GET_API_VERSION = _IO(IOASID_TYPE, IOASID_BASE + 0);
export const IOASID_GET_INFO = _IO(IOASID_TYPE, IOASID_BASE + 1);
export const IOASID_REQUEST_ALLOC = _IO(IOASID_TYPE, IOASID_BASE + 2);
export const IOASID_REQUEST_FREE = _IO(IOASID_TYPE, IOASID_BASE + 3);
