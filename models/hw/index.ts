export * from './memory.ts';
export * from './dma-effects.ts';
export * from './vtd/index.ts';
export * from './pcie/index.ts';
