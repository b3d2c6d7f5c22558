import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkImports, groupOf, importsOf, sourceTree } from './layering.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('import direction (DESIGN.md "Layers")', () => {
  it('holds for every source file in the tree', () => {
    const files = sourceTree(root, ['sim', 'models', 'scenarios', 'reports', 'bin', 'bench']);
    expect(files.size).toBeGreaterThan(10);
    expect(checkImports(files)).toEqual([]);
  });

  it('catches each forbidden direction', () => {
    const bad = new Map([
      ['sim/x.ts', "import { Vtd } from '../models/hw/vtd/vtd.ts';"],
      ['models/hw/vtd/qi.ts', "import { kmalloc } from '../../kernel/slab.ts';"],
      ['models/iommu/iommu.ts', "import type { Ioas } from '../iommufd/ioas.ts';"],
      ['models/iommu/intel/iommu.ts', "import { x } from '../iommu_uapi.ts';"],
      ['models/iommufd/device.ts', "import { y } from '../vfio/vfio_iommu_type1.ts';"],
      ['models/vfio/vfio_iommu_type1.ts', "export { z } from '../iommufd/main.ts';"],
      ['models/vmm/backend-iommufd.ts', "const m = await import('../iommufd/main.ts');"],
      ['reports/text.ts', "import { run } from '../scenarios/runner.ts';"],
      ['models/machine/host.ts', "import { iommufd_init } from '../iommufd/main.ts';"],
      ['models/vfio/mystery.ts', ''],
    ]);
    const v = checkImports(bad);
    expect(v.map((x) => x.file)).toEqual([...bad.keys()]);
    expect(v[0]!.why).toBe('sim may not import hw');
    expect(v[3]!.why).toBe('iommu may not import iommu-tunnel');
  });

  it('allows the permitted directions', () => {
    const good = new Map([
      ['models/iommu/iommu_uapi.ts', "import { iommu_attach } from './iommu.ts';"],
      ['models/vfio/vfio_iommu_type1.ts', "import { u } from '../iommu/iommu_uapi.ts';"],
      ['models/vmm/backend-iommufd.ts', "import { sys_ioctl } from '../kernel/syscalls.ts';\nimport { z } from 'zod';"],
      ['reports/text.ts', "import type { RunResult } from '../scenarios/results.ts';"],
    ]);
    expect(checkImports(good)).toEqual([]);
    expect(groupOf('models/iommu/intel/svm_v8.ts')).toBe('iommu-tunnel');
    expect(importsOf("import type { A } from './a.ts';\nexport * from \"./b.ts\";")).toEqual(['./a.ts', './b.ts']);
  });
});
