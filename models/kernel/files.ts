import type { Kernel } from './kernel.ts';
import type { UserPtr } from './mm.ts';
import type { KAlloc } from './slab.ts';
import { kfree } from './slab.ts';

/**
 * struct file_operations, reduced to what the modelled subsystems implement. Each file type
 * resolves its own ioctl numbers: the same number means different things on different files.
 */
export interface FileOperations {
  /** the file type, as reports name it: "vfio-container", "vfio-group", "iommufd", … */
  readonly type: string;
  open?(k: Kernel, file: File): number;
  unlocked_ioctl?(k: Kernel, file: File, cmd: number, arg: number): number;
  /** `pos`: the offset pread/pwrite pass (loff_t *ppos); undefined for read/write */
  read?(k: Kernel, file: File, buf: UserPtr, count: number, pos?: number): number;
  write?(k: Kernel, file: File, buf: UserPtr, count: number, pos?: number): number;
  /** returns the EPOLL* mask ready now */
  poll?(k: Kernel, file: File): number;
  release?(k: Kernel, file: File): void;
  /**
   * the ioctl's name on this file type, for the results (e.g. 0x3B76 → "VFIO_IOMMU_NESTING_OP");
   * `file` lets a file type whose ioctls depend on the open instance name them
   */
  ioctlName?(cmd: number, file?: File): string | undefined;
}

/** struct file: shared by every fd (in any process) that refers to it. */
export class File {
  /** f_count: fds and in-kernel references */
  f_count = 1;
  private_data: unknown = null;
  /** set once ->open succeeded: a file whose open failed is freed without ->release */
  opened = false;
  constructor(
    readonly f_op: FileOperations,
    /** the path it was opened by, or an anon inode name */
    readonly path: string,
    readonly alloc: KAlloc,
  ) {}
}

/** fget's counterpart for an in-kernel reference. */
export function get_file(file: File): File {
  file.f_count++;
  return file;
}

/** fput: drops a reference; the last one runs ->release (__fput) and frees the file. */
export function fput(k: Kernel, file: File): void {
  if (file.f_count <= 0) k.sim.oops(`fput: ${file.path} has no references left`);
  if (--file.f_count > 0) return;
  if (file.opened) file.f_op.release?.(k, file);
  kfree(k, file.alloc);
}

/** A process's fd table: the lowest free fd is allocated first, as alloc_fd does. */
export class FdTable {
  private readonly fds: (File | undefined)[] = [];
  private readonly handles: number[] = [];

  constructor(private readonly k: Kernel) {}

  install(file: File, label: string): number {
    let fd = this.fds.findIndex((f) => f === undefined);
    if (fd < 0) fd = this.fds.length;
    this.fds[fd] = file;
    this.handles[fd] = this.k.sim.leaks.track('fd', `${label} fd ${fd} → ${file.path}`);
    return fd;
  }

  get(fd: number): File | undefined {
    return Number.isInteger(fd) && fd >= 0 ? this.fds[fd] : undefined;
  }

  /** Removes the fd and returns its file (the caller fputs it), or undefined for a bad fd. */
  remove(fd: number): File | undefined {
    const f = this.get(fd);
    if (!f) return undefined;
    this.fds[fd] = undefined;
    this.k.sim.leaks.release('fd', this.handles[fd]!);
    return f;
  }

  /** open fds, lowest first */
  openFds(): number[] {
    const out: number[] = [];
    this.fds.forEach((f, i) => {
      if (f) out.push(i);
    });
    return out;
  }
}
