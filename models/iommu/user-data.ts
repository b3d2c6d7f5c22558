import { EINVAL } from '../kernel/errno.ts';
import type { Kernel } from '../kernel/kernel.ts';
import { uptr } from '../kernel/mm.ts';
import { copy_struct_from_user } from '../kernel/uaccess.ts';
import { decode, offsetOfEnd, sizeOf, type StructDecl, type UapiObject } from '../kernel/uapi/index.ts';
import type { IommuUserData, IommuUserDataArray } from './types.ts';

/**
 * The helpers drivers use to read their user data (include/linux/iommu.h, v6.15). The ioctl set
 * the type; the driver copies its own struct, with the kernel's extensible-struct rules, from the
 * user pointer the core passed down. The copy happens inside the driver: userPtrDepth shows how
 * deep that is. They are static inlines, so they open no frame of their own.
 */
/**
 * iommu_copy_struct_from_user(kdst, user_data, data_type, min_last): EINVAL for another type, a
 * length below offsetofend(min_last) or above the kernel's struct (unlike a bare
 * copy_struct_from_user, a longer user struct is refused outright); else EFAULT on a bad pointer.
 */
export function iommu_copy_struct_from_user(
  k: Kernel,
  decl: StructDecl,
  ud: IommuUserData,
  dataType: number,
  minLast: string,
): { err: number; val: UapiObject | null } {
  if (ud.type !== dataType) return { err: -EINVAL, val: null };
  if (ud.len < offsetOfEnd(decl, minLast) || ud.len > sizeOf(decl)) return { err: -EINVAL, val: null };
  const buf = new Uint8Array(sizeOf(decl));
  const ret = copy_struct_from_user(k, buf, buf.length, ud.uptr, ud.len);
  if (ret) return { err: ret, val: null };
  return { err: 0, val: decode(decl, buf) };
}

/** iommu_copy_struct_from_user_array: entry `index` of the user array, one copy per entry. */
export function iommu_copy_struct_from_user_array(
  k: Kernel,
  decl: StructDecl,
  arr: IommuUserDataArray,
  dataType: number,
  index: number,
  minLast: string,
): { err: number; val: UapiObject | null } {
  if (index >= arr.entry_num || !arr.entry_num) return { err: -EINVAL, val: null };
  if (arr.type !== dataType) return { err: -EINVAL, val: null };
  if (arr.entry_len < offsetOfEnd(decl, minLast) || arr.entry_len > sizeOf(decl)) return { err: -EINVAL, val: null };
  const buf = new Uint8Array(sizeOf(decl));
  const ret = copy_struct_from_user(k, buf, buf.length, uptr(arr.uptr + index * arr.entry_len), arr.entry_len);
  if (ret) return { err: ret, val: null };
  return { err: 0, val: decode(decl, buf) };
}
