/**
 * The vocabulary of uAPI struct declarations (DESIGN principle 1, "Real bytes").
 *
 * A declaration says only what the header says: member names, C types, nesting, unions, array
 * lengths. Sizes, alignments and offsets are never written down; layout.ts computes them the way gcc
 * does on x86_64, and test/fixtures/uapi-layouts.json (produced with gcc) checks the result.
 */

/** C scalar types as the uAPI headers spell them. `char` is only used in arrays (strings). */
export type ScalarType =
  | '__u8'
  | '__s8'
  | '__u16'
  | '__s16'
  | '__u32'
  | '__s32'
  | '__u64'
  | '__s64'
  | '__aligned_u64'
  | '__aligned_le64'
  | 'char';

/** What an array or a flex array holds. */
export type ElementType = ScalarType | StructDecl;

export type FieldDecl =
  | { readonly kind: 'scalar'; readonly name: string; readonly type: ScalarType }
  | { readonly kind: 'array'; readonly name: string; readonly of: ElementType; readonly count: number }
  /** `T name[]`: contributes its alignment, no size; must be the last member of a top-level struct. */
  | { readonly kind: 'flex'; readonly name: string; readonly of: ElementType }
  /** A member whose type is a named struct, e.g. `struct vfio_info_cap_header header`. */
  | { readonly kind: 'struct'; readonly name: string; readonly decl: StructDecl }
  /**
   * A struct or union defined in place: `union { ... } vendor;` (named) or `union { ... };`
   * (anonymous: its members are reached as if they were members of the enclosing struct, as in C11).
   */
  | {
      readonly kind: 'inline';
      readonly name: string | undefined;
      readonly union: boolean;
      readonly fields: readonly FieldDecl[];
    };

/** Where a declaration comes from. */
export interface UapiSource {
  /** `merged` = in a released kernel; `posted` = on a list, never merged (DESIGN principle 6). */
  readonly kind: 'merged' | 'posted';
  /** Short label for tables: `v5.12`, `v8 01/10`, `ioasid V4 18/18`, `v6.15`. */
  readonly era: string;
  /** Release tag (`v6.15`) or patch-mail Message-Id that defines the layout. */
  readonly ref: string;
  /** Where the header text was actually read (`owner/repo@sha`), when that is not `ref` itself. */
  readonly readAt?: string;
  /** Human-readable citation, e.g. the patch subject. */
  readonly note?: string;
}

/** Which of the two compared designs uses the struct ('both': vhost-vdpa's own uAPI). */
export type Design = 'A' | 'B' | 'both';

export interface StructDecl {
  /** Kernel struct name without `struct `. */
  readonly name: string;
  /** Header path inside the kernel tree, e.g. `include/uapi/linux/iommufd.h`. */
  readonly header: string;
  readonly design: Design;
  readonly source: UapiSource;
  readonly fields: readonly FieldDecl[];
}

/** Values accepted by `encode`. Missing (undefined) members encode as zero. */
export type UapiInputValue =
  | number
  | bigint
  | string
  | Uint8Array
  | readonly UapiInputValue[]
  | UapiInput;
export interface UapiInput {
  readonly [member: string]: UapiInputValue | undefined;
}

/** Values produced by `decode`: ≤32-bit integers are numbers, 64-bit ones bigints. */
export type UapiValue = number | bigint | string | Uint8Array | UapiValue[] | UapiObject;
export interface UapiObject {
  [member: string]: UapiValue;
}
