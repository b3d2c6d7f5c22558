import type { FileOperations } from './files.ts';

/**
 * The char devices userspace can open by path. Module init registers them (/dev/vfio/vfio,
 * /dev/iommu, /dev/ioasid, /dev/vfio/devices/vfioN, /dev/vhost-vdpa-N); open looks them up.
 */
export class Devfs {
  private readonly nodes = new Map<string, { fops: FileOperations; data: unknown }>();

  register(path: string, fops: FileOperations, data: unknown = null): void {
    if (this.nodes.has(path)) throw new Error(`devfs: ${path} registered twice`);
    this.nodes.set(path, { fops, data });
  }

  unregister(path: string): void {
    this.nodes.delete(path);
  }

  lookup(path: string): { fops: FileOperations; data: unknown } | undefined {
    return this.nodes.get(path);
  }

  paths(): string[] {
    return [...this.nodes.keys()].sort();
  }
}
