/**
 * The one registry of uAPI structs of both designs. Everything that encodes, decodes, prints or
 * checks a struct looks it up here, so each layout exists exactly once (DESIGN principle 1).
 */
import type { Design, StructDecl } from './types.ts';
import { IOMMU_UAPI_STRUCTS } from './structs/iommu-uapi.ts';
import { VFIO_TYPE1_STRUCTS } from './structs/vfio-type1.ts';
import { TUNNEL_V8_STRUCTS } from './structs/tunnel-v8.ts';
import { VFIO_NESTED_V13_STRUCTS } from './structs/vfio-nested-v13.ts';
import { IOASID_STRUCTS } from './structs/ioasid.ts';
import { IOMMUFD_IOAS_STRUCTS } from './structs/iommufd-ioas.ts';
import { IOMMUFD_HWPT_STRUCTS } from './structs/iommufd-hwpt.ts';
import { IOMMUFD_FAULT_STRUCTS } from './structs/iommufd-fault.ts';
import { VFIO_CDEV_STRUCTS } from './structs/vfio-cdev.ts';
import { VHOST_STRUCTS } from './structs/vhost.ts';
import { VHOST_IOMMUFD_RFC_STRUCTS } from './structs/vhost-iommufd-rfc.ts';
import { layoutOf } from './layout.ts';

const ALL: readonly StructDecl[] = Object.freeze([
  ...IOMMU_UAPI_STRUCTS,
  ...VFIO_TYPE1_STRUCTS,
  ...TUNNEL_V8_STRUCTS,
  ...VFIO_NESTED_V13_STRUCTS,
  ...IOASID_STRUCTS,
  ...IOMMUFD_IOAS_STRUCTS,
  ...IOMMUFD_HWPT_STRUCTS,
  ...IOMMUFD_FAULT_STRUCTS,
  ...VFIO_CDEV_STRUCTS,
  ...VHOST_STRUCTS,
  ...VHOST_IOMMUFD_RFC_STRUCTS,
]);

const BY_NAME: ReadonlyMap<string, StructDecl> = (() => {
  const m = new Map<string, StructDecl>();
  for (const d of ALL) {
    if (m.has(d.name)) throw new Error(`uapi: struct ${d.name} registered twice`);
    layoutOf(d); // a declaration that cannot be laid out fails at load, not at first use
    m.set(d.name, d);
  }
  return m;
})();

/** All registered structs, design A first, in header order. */
export function allStructs(design?: Exclude<Design, 'both'>): readonly StructDecl[] {
  return design ? ALL.filter((d) => d.design === design || d.design === 'both') : ALL;
}

/** The struct called `name` (without `struct `), or undefined. */
export function lookupStruct(name: string): StructDecl | undefined {
  return BY_NAME.get(name.replace(/^struct\s+/, ''));
}

/** Like lookupStruct, but an unknown name is an error. */
export function requireStruct(name: string): StructDecl {
  const d = lookupStruct(name);
  if (!d) throw new Error(`uapi: unknown struct ${name}`);
  return d;
}

/** `include/uapi/linux/iommufd.h @ v6.15`, or the patch mail for posted structs. */
export function citation(decl: StructDecl): string {
  const { source } = decl;
  const where = source.kind === 'posted' ? `${source.era} ${source.ref}` : source.ref;
  return `${decl.header} @ ${where}${source.readAt ? ` (read at ${source.readAt})` : ''}`;
}
