/**
 * Ioctl number encoding, after include/uapi/asm-generic/ioctl.h (x86: 8-bit nr, 8-bit type, 14-bit
 * size, 2-bit direction). Numbers mean nothing without the file they are issued on: each file type
 * resolves its own (DESIGN principle 2).
 */
const NRBITS = 8;
const TYPEBITS = 8;
const SIZEBITS = 14;
const NRSHIFT = 0;
const TYPESHIFT = NRSHIFT + NRBITS;
const SIZESHIFT = TYPESHIFT + TYPEBITS;
const DIRSHIFT = SIZESHIFT + SIZEBITS;

export const IOC_NONE = 0;
export const IOC_WRITE = 1;
export const IOC_READ = 2;

export function _IOC(dir: number, type: number, nr: number, size: number): number {
  if (nr < 0 || nr > 0xff || type < 0 || type > 0xff || size < 0 || size >= 1 << SIZEBITS) {
    throw new RangeError(`_IOC: out of range (type ${type}, nr ${nr}, size ${size})`);
  }
  // >>> 0 keeps dir = READ|WRITE (bit 31) an unsigned value
  return ((dir << DIRSHIFT) | (type << TYPESHIFT) | (nr << NRSHIFT) | (size << SIZESHIFT)) >>> 0;
}

export const _IO = (type: number, nr: number): number => _IOC(IOC_NONE, type, nr, 0);
export const _IOR = (type: number, nr: number, size: number): number => _IOC(IOC_READ, type, nr, size);
export const _IOW = (type: number, nr: number, size: number): number => _IOC(IOC_WRITE, type, nr, size);
export const _IOWR = (type: number, nr: number, size: number): number => _IOC(IOC_READ | IOC_WRITE, type, nr, size);

export const _IOC_NR = (cmd: number): number => (cmd >>> NRSHIFT) & 0xff;
export const _IOC_TYPE = (cmd: number): number => (cmd >>> TYPESHIFT) & 0xff;
export const _IOC_SIZE = (cmd: number): number => (cmd >>> SIZESHIFT) & ((1 << SIZEBITS) - 1);
export const _IOC_DIR = (cmd: number): number => (cmd >>> DIRSHIFT) & 3;

export function hexCmd(cmd: number): string {
  return `0x${(cmd >>> 0).toString(16).toUpperCase()}`;
}
