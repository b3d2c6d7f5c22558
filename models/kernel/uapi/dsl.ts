/**
 * Small constructors so a declaration reads like the header it transcribes:
 *
 *   struct iommu_destroy { __u32 size; __u32 id; };
 *   → defineStruct('iommu_destroy', IOMMUFD_H, [u32('size'), u32('id')])
 *
 * No offsets or sizes appear here (layout.ts computes them).
 */
import type { Design, ElementType, FieldDecl, ScalarType, StructDecl, UapiSource } from './types.ts';

export interface HeaderOrigin {
  readonly header: string;
  readonly design: Design;
  readonly source: UapiSource;
}

export function defineStruct(name: string, origin: HeaderOrigin, fields: readonly FieldDecl[]): StructDecl {
  return Object.freeze({ name, ...origin, fields: Object.freeze([...fields]) });
}

/** Same header, different source (e.g. a v8 patch mail adding to iommu.h). */
export function withSource(origin: HeaderOrigin, source: UapiSource): HeaderOrigin {
  return { ...origin, source };
}

export function scalar(name: string, type: ScalarType): FieldDecl {
  return { kind: 'scalar', name, type };
}
export const u8 = (name: string): FieldDecl => scalar(name, '__u8');
export const u16 = (name: string): FieldDecl => scalar(name, '__u16');
export const u32 = (name: string): FieldDecl => scalar(name, '__u32');
export const s32 = (name: string): FieldDecl => scalar(name, '__s32');
export const u64 = (name: string): FieldDecl => scalar(name, '__u64');
export const s64 = (name: string): FieldDecl => scalar(name, '__s64');
export const au64 = (name: string): FieldDecl => scalar(name, '__aligned_u64');

/** `T name[count]` */
export function array(name: string, of: ElementType, count: number): FieldDecl {
  if (!Number.isInteger(count) || count <= 0) throw new Error(`uapi: array ${name}: bad length ${count}`);
  return { kind: 'array', name, of, count };
}

/** `T name[]` */
export function flex(name: string, of: ElementType): FieldDecl {
  return { kind: 'flex', name, of };
}

/** `struct decl name` */
export function member(name: string, decl: StructDecl): FieldDecl {
  return { kind: 'struct', name, decl };
}

/** `union { ... } name;`, or an anonymous `union { ... };` when name is undefined. */
export function union(name: string | undefined, fields: readonly FieldDecl[]): FieldDecl {
  return { kind: 'inline', name, union: true, fields };
}

/** `struct { ... } name;` defined in place (e.g. ioasid_alloc_request.range). */
export function inlineStruct(name: string | undefined, fields: readonly FieldDecl[]): FieldDecl {
  return { kind: 'inline', name, union: false, fields };
}
