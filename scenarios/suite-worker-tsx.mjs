// Starts the suite worker from its TypeScript source through tsx (a built bundle needs no shim).
import { register } from 'tsx/esm/api';

register();
await import('./suite-worker.ts');
