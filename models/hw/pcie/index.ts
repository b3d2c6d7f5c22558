export * from './devtlb.ts';
export * from './device.ts';
