export * from './backend.ts';
export * from './lifecycle.ts';
export * from './guest-tables.ts';
export * from './frontend.ts';
export * from './vm.ts';
