/**
 * The import direction of DESIGN.md "Layers", as data: each source file belongs to a group, and a
 * group may import only the groups listed for it. Data flows down; nothing imports upward.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';

export type Group =
  | 'sim'
  | 'hw'
  | 'kernel'
  | 'iommu' // the shared IOMMU core, Intel driver, io-pgfault
  | 'iommu-tunnel' // A's entry points that v8 put in drivers/iommu (layer iommu-uapi), and /dev/ioasid
  | 'tunnel' // design A above the IOMMU core
  | 'iommufd' // design B above the IOMMU core
  | 'vdpa' // vDPA bus code both designs' vhost-vdpa sit on
  | 'machine' // the shared platform: memory, the host VT-d, the kernel and the shared IOMMU layer, wired
  | 'guest'
  | 'vmm'
  | 'scenarios'
  | 'results' // the result types reports read
  | 'reports'
  | 'bin'
  | 'bench'
  | 'test';

const ALLOWED: Record<Group, readonly Group[]> = {
  sim: [],
  hw: ['sim'],
  kernel: ['sim'],
  iommu: ['sim', 'hw', 'kernel'],
  'iommu-tunnel': ['sim', 'hw', 'kernel', 'iommu'],
  vdpa: ['sim', 'hw', 'kernel', 'iommu'],
  tunnel: ['sim', 'hw', 'kernel', 'iommu', 'iommu-tunnel', 'vdpa'],
  iommufd: ['sim', 'hw', 'kernel', 'iommu', 'vdpa'],
  machine: ['sim', 'hw', 'kernel', 'iommu'],
  guest: ['sim', 'hw'],
  // backends talk to the kernel only through syscalls on the fd table: no subsystem
  vmm: ['sim', 'hw', 'kernel', 'guest'],
  scenarios: ['sim', 'hw', 'kernel', 'iommu', 'iommu-tunnel', 'tunnel', 'iommufd', 'vdpa', 'machine', 'guest', 'vmm', 'results'],
  results: ['sim'],
  reports: ['sim', 'results'],
  bin: ['sim', 'hw', 'kernel', 'iommu', 'iommu-tunnel', 'tunnel', 'iommufd', 'vdpa', 'machine', 'guest', 'vmm', 'scenarios', 'results', 'reports'],
  bench: ['sim', 'hw', 'kernel', 'iommu', 'iommu-tunnel', 'tunnel', 'iommufd', 'vdpa', 'machine', 'guest', 'vmm', 'scenarios', 'results', 'reports'],
  test: ['sim', 'hw', 'kernel', 'iommu', 'iommu-tunnel', 'tunnel', 'iommufd', 'vdpa', 'machine', 'guest', 'vmm', 'scenarios', 'results', 'reports', 'bin', 'bench'],
};

/** Which group a repository-relative path belongs to; null for a file no rule covers. */
export function groupOf(path: string): Group | null {
  const p = path.replaceAll('\\', '/');
  const top = p.split('/')[0];
  if (top === 'sim' || top === 'bin' || top === 'bench' || top === 'test' || top === 'reports') return top;
  if (top === 'scenarios') return /^scenarios\/results?\.ts$/.test(p) ? 'results' : 'scenarios';
  if (!p.startsWith('models/')) return null;
  const sub = p.split('/')[1];
  switch (sub) {
    case 'hw':
    case 'kernel':
    case 'machine':
    case 'guest':
    case 'vmm':
      return sub;
    case 'iommu':
      // where v8 put them, but they belong to design A
      return /^models\/iommu\/(iommu_uapi|ioasid|intel\/svm_v8)\.ts$/.test(p) ? 'iommu-tunnel' : 'iommu';
    case 'iommufd':
      return 'iommufd';
    case 'vfio':
      if (/^models\/vfio\/(vfio|vfio_iommu_type1|vfio_pci|vfio_pci_dma_fault)\.ts$/.test(p)) return 'tunnel';
      if (/^models\/vfio\/(device_cdev|iommufd)\.ts$/.test(p)) return 'iommufd';
      return null;
    case 'vhost':
      if (/tunnel/.test(p)) return 'tunnel';
      if (/iommufd/.test(p)) return 'iommufd';
      return 'vdpa';
    default:
      return null;
  }
}

const IMPORT_RE = /(?:^|\n)\s*(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

export function importsOf(source: string): string[] {
  const out: string[] = [];
  for (const m of source.matchAll(IMPORT_RE)) out.push((m[1] ?? m[2])!);
  return out;
}

export interface Violation {
  file: string;
  imports: string;
  why: string;
}

/** Checks one file's imports; `files` maps repository-relative paths to their sources. */
export function checkImports(files: ReadonlyMap<string, string>): Violation[] {
  const out: Violation[] = [];
  for (const [file, src] of files) {
    const g = groupOf(file);
    if (g === null) {
      out.push({ file, imports: '-', why: 'no layering rule covers this file: classify it in test/arch/layering.ts' });
      continue;
    }
    for (const spec of importsOf(src)) {
      if (!spec.startsWith('.')) continue; // packages
      const target = normalize(join(dirname(file), spec)).replaceAll('\\', '/');
      const tg = groupOf(target);
      if (tg === null || (tg !== g && !ALLOWED[g].includes(tg))) {
        out.push({ file, imports: target, why: `${g} may not import ${tg ?? 'an unclassified file'}` });
      }
    }
  }
  return out;
}

export function sourceTree(root: string, dirs: readonly string[]): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const full = join(d, name);
      if (statSync(full).isDirectory()) walk(full);
      else if (name.endsWith('.ts')) files.set(relative(root, full).replaceAll('\\', '/'), readFileSync(full, 'utf8'));
    }
  };
  for (const d of dirs) {
    try {
      walk(join(root, d));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  return files;
}
