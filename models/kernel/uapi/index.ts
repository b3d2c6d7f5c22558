/**
 * uAPI structs of both designs: declarations, the byte-exact codec, the registry and the
 * `ioasid-sim structs` renderers. Constants live next to their structs under structs/.
 */
export type * from './types.ts';
export * from './dsl.ts';
export * from './layout.ts';
export * from './codec.ts';
export * from './registry.ts';
export * from './report.ts';
export * from './structs/iommu-uapi.ts';
export * from './structs/vfio-type1.ts';
export * from './structs/tunnel-v8.ts';
export * from './structs/vfio-nested-v13.ts';
export * from './structs/ioasid.ts';
export * from './structs/iommufd-origin.ts';
export * from './structs/iommufd-ioas.ts';
export * from './structs/iommufd-hwpt.ts';
export * from './structs/iommufd-fault.ts';
export * from './structs/vfio-cdev.ts';
export * from './structs/vhost.ts';
export * from './structs/vhost-iommufd-rfc.ts';
