/**
 * Struct layout as gcc computes it for x86_64 (SysV psABI):
 * - each scalar is aligned to its size; `__aligned_u64` is a u64 with 8-byte alignment (the same as
 *   `__u64` on x86_64, but the headers spell it so 32-bit x86 agrees too);
 * - a member starts at the next multiple of its alignment; a struct's alignment is its largest
 *   member's; its size is rounded up to that alignment (trailing padding);
 * - a union puts every member at 0; its size is the largest member rounded up to its alignment;
 * - a flex array `T x[]` sits at the next multiple of T's alignment, adds T's alignment to the
 *   struct's and nothing to its size.
 */
import type { FieldDecl, ElementType, ScalarType, StructDecl } from './types.ts';

export type LaidNode =
  | { readonly kind: 'scalar'; readonly type: ScalarType; readonly size: number; readonly align: number }
  | { readonly kind: 'array'; readonly elem: LaidNode; readonly count: number; readonly size: number; readonly align: number }
  | { readonly kind: 'flex'; readonly elem: LaidNode; readonly size: 0; readonly align: number }
  | LaidRecord;

export interface LaidRecord {
  readonly kind: 'record';
  readonly union: boolean;
  /** C type name for messages: the struct name, or `<anonymous>` */
  readonly typeName: string;
  readonly fields: readonly LaidField[];
  readonly size: number;
  readonly align: number;
}

export interface LaidField {
  /** undefined for an anonymous struct/union member */
  readonly name: string | undefined;
  /** offset from the start of the enclosing record */
  readonly offset: number;
  readonly node: LaidNode;
}

/** One named member reachable from the top of a struct, with its absolute offset. */
export interface MemberLayout {
  /** dotted path from the top; anonymous members do not add a component (C11 rules) */
  readonly path: string;
  readonly offset: number;
  readonly size: number;
  readonly node: LaidNode;
}

export interface StructLayout {
  readonly decl: StructDecl;
  readonly root: LaidRecord;
  readonly size: number;
  readonly align: number;
  /** The trailing flex array, if any, with its absolute offset. */
  readonly flex: { readonly name: string; readonly offset: number; readonly elem: LaidNode } | undefined;
  /** Every named member, depth first, in declaration order (top-level members have no dot). */
  readonly members: readonly MemberLayout[];
}

const SCALARS: Readonly<Record<ScalarType, number>> = {
  __u8: 1,
  __s8: 1,
  char: 1,
  __u16: 2,
  __s16: 2,
  __u32: 4,
  __s32: 4,
  __u64: 8,
  __s64: 8,
  __aligned_u64: 8,
  __aligned_le64: 8,
};

export function scalarSize(type: ScalarType): number {
  return SCALARS[type];
}

/** The values each scalar type holds: [lo, hi]. */
export const SCALAR_RANGES: Readonly<Record<ScalarType, readonly [bigint, bigint]>> = {
  __u8: [0n, 0xffn],
  char: [-0x80n, 0xffn],
  __s8: [-0x80n, 0x7fn],
  __u16: [0n, 0xffffn],
  __s16: [-0x8000n, 0x7fffn],
  __u32: [0n, 0xffff_ffffn],
  __s32: [-0x8000_0000n, 0x7fff_ffffn],
  __u64: [0n, 0xffff_ffff_ffff_ffffn],
  __aligned_u64: [0n, 0xffff_ffff_ffff_ffffn],
  __aligned_le64: [0n, 0xffff_ffff_ffff_ffffn],
  __s64: [-0x8000_0000_0000_0000n, 0x7fff_ffff_ffff_ffffn],
};

/** SCALAR_RANGES as numbers, clipped to what a double holds exactly. */
export const SCALAR_NUMBER_RANGES = Object.fromEntries(
  Object.entries(SCALAR_RANGES).map(([t, [lo, hi]]) => [t, [Math.max(Number(lo), Number.MIN_SAFE_INTEGER), Math.min(Number(hi), Number.MAX_SAFE_INTEGER)]]),
) as unknown as Readonly<Record<ScalarType, readonly [number, number]>>;

const roundUp = (n: number, a: number): number => Math.ceil(n / a) * a;

const cache = new WeakMap<StructDecl, StructLayout>();
/** each laid-out struct's members by path (offsetof is asked on every ioctl) */
const byPath = new WeakMap<StructDecl, Map<string, MemberLayout>>();

export function layoutOf(decl: StructDecl): StructLayout {
  const hit = cache.get(decl);
  if (hit) return hit;
  const root = layRecord(decl.fields, false, decl.name, true);
  const last = root.fields.at(-1);
  const flex =
    last && last.node.kind === 'flex' && last.name !== undefined
      ? { name: last.name, offset: last.offset, elem: last.node.elem }
      : undefined;
  const members: MemberLayout[] = [];
  collectMembers(root, 0, '', members);
  const paths = new Set<string>();
  for (const m of members) {
    // catches a member of an anonymous union clashing with a sibling, which gcc rejects too
    if (paths.has(m.path)) throw new Error(`uapi: ${decl.name}.${m.path}: duplicate member`);
    paths.add(m.path);
  }
  const laid: StructLayout = Object.freeze({
    decl,
    root,
    size: root.size,
    align: root.align,
    flex,
    members: Object.freeze(members),
  });
  cache.set(decl, laid);
  byPath.set(decl, new Map(members.map((m) => [m.path, m])));
  return laid;
}

export function sizeOf(decl: StructDecl): number {
  return layoutOf(decl).size;
}

/** offsetof(struct, a.b.c); throws on an unknown path. */
export function offsetOf(decl: StructDecl, path: string): number {
  return memberOf(decl, path).offset;
}

/** offsetofend(struct, a.b.c): what the kernel uses as the minimum size of a uAPI struct. */
export function offsetOfEnd(decl: StructDecl, path: string): number {
  const m = memberOf(decl, path);
  return m.offset + m.size;
}

export function memberOf(decl: StructDecl, path: string): MemberLayout {
  layoutOf(decl);
  const m = byPath.get(decl)!.get(path);
  if (!m) throw new Error(`uapi: struct ${decl.name} has no member ${path}`);
  return m;
}

function layElement(of: ElementType, where: string): LaidNode {
  if (typeof of === 'string') return { kind: 'scalar', type: of, size: SCALARS[of], align: SCALARS[of] };
  const inner = layoutOf(of);
  if (inner.flex) throw new Error(`uapi: ${where}: struct ${of.name} ends in a flex array and cannot be embedded`);
  return inner.root;
}

function layField(f: FieldDecl, where: string): LaidNode {
  switch (f.kind) {
    case 'scalar':
      return layElement(f.type, where);
    case 'struct':
      return layElement(f.decl, where);
    case 'array': {
      const elem = layElement(f.of, where);
      return { kind: 'array', elem, count: f.count, size: elem.size * f.count, align: elem.align };
    }
    case 'flex': {
      const elem = layElement(f.of, where);
      return { kind: 'flex', elem, size: 0, align: elem.align };
    }
    case 'inline':
      return layRecord(f.fields, f.union, '<anonymous>', false, where);
  }
}

function layRecord(
  fields: readonly FieldDecl[],
  isUnion: boolean,
  typeName: string,
  topLevel: boolean,
  where: string = typeName,
): LaidRecord {
  if (fields.length === 0) throw new Error(`uapi: ${where}: empty struct/union`);
  const seen = new Set<string>();
  const out: LaidField[] = [];
  let offset = 0;
  let size = 0;
  let align = 1;
  fields.forEach((f, i) => {
    const label = `${where}.${f.name ?? '<anonymous>'}`;
    if (f.name !== undefined) {
      if (seen.has(f.name)) throw new Error(`uapi: ${label}: duplicate member`);
      seen.add(f.name);
    }
    if (f.kind === 'flex' && (!topLevel || isUnion || i !== fields.length - 1)) {
      throw new Error(`uapi: ${label}: a flex array must be the last member of a top-level struct`);
    }
    const node = layField(f, label);
    align = Math.max(align, node.align);
    const at = isUnion ? 0 : roundUp(offset, node.align);
    out.push({ name: f.name, offset: at, node });
    if (isUnion) size = Math.max(size, node.size);
    else offset = at + node.size;
  });
  if (!isUnion) size = offset;
  return { kind: 'record', union: isUnion, typeName, fields: out, size: roundUp(size, align), align };
}

function collectMembers(rec: LaidRecord, base: number, prefix: string, out: MemberLayout[]): void {
  for (const f of rec.fields) {
    const abs = base + f.offset;
    if (f.name === undefined) {
      // anonymous struct/union: its members belong to the enclosing scope
      if (f.node.kind === 'record') collectMembers(f.node, abs, prefix, out);
      continue;
    }
    const path = prefix + f.name;
    out.push({ path, offset: abs, size: f.node.size, node: f.node });
    if (f.node.kind === 'record') collectMembers(f.node, abs, `${path}.`, out);
  }
}
