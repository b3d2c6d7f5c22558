import { describe, expect, it } from 'vitest';
import { P, Sim, bufferMetrics, flatTraceJson, flattenTrace, functionGraph, spanTreeJson, treeMetrics, type KFn, type Span } from '../../sim/index.ts';

const posted = { kind: 'posted', source: '[Patch v8 04/10]' } as const;
const merged = { kind: 'merged', source: 'drivers/vfio/vfio.c @ v5.12' } as const;

const sys: KFn = { name: '__x64_sys_ioctl', layer: 'syscall', sig: 'long sys_ioctl(unsigned int fd, unsigned int cmd, unsigned long arg)', prov: merged, entry: 'syscall' };
const unl: KFn = { name: 'vfio_fops_unl_ioctl', layer: 'vfio', sig: 'static long vfio_fops_unl_ioctl(struct file *filep, unsigned int cmd, unsigned long arg)', prov: merged, entry: 'ioctl', uapi: { param: 'arg', ctype: 'unsigned long' } };
const type1: KFn = { name: 'vfio_iommu_type1_ioctl', layer: 'vfio', sig: 'static long vfio_iommu_type1_ioctl(void *iommu_data, unsigned int cmd, unsigned long arg)', prov: posted, uapi: { param: 'arg', ctype: 'unsigned long' }, handler: true, op: 'bind' };
const bindFn: KFn = { name: 'vfio_dev_bind_gpasid_fn', layer: 'vfio', sig: 'static int vfio_dev_bind_gpasid_fn(struct device *dev, void *data)', prov: posted, uapi: { param: 'data', ctype: 'void *' } };
const uapiBind: KFn = { name: 'iommu_uapi_sva_bind_gpasid', layer: 'iommu-uapi', sig: 'int iommu_uapi_sva_bind_gpasid(struct iommu_domain *domain, struct device *dev, void __user *udata)', prov: posted, uapi: { param: 'udata', ctype: 'void __user *' } };
const svmBind: KFn = { name: 'intel_svm_bind_gpasid', layer: 'intel', sig: 'int intel_svm_bind_gpasid(struct iommu_domain *domain, struct device *dev, struct iommu_gpasid_bind_data *data)', prov: posted, uapi: { param: 'data', ctype: 'struct iommu_gpasid_bind_data *' } };

function leaf(fn: KFn, start: number, end: number): Span {
  return { fn, start, end, children: [] };
}
function node(fn: KFn, start: number, end: number, children: Span[]): Span {
  return { fn, start, end, children };
}

describe('trace metrics', () => {
  it('counts type-erasure hops below the ioctl entry on the deepest chain', () => {
    // two devices in the group: the per-device callback runs twice, which must not double the hops
    const tree = [
      node(sys, 0, 100, [
        node(unl, 1, 99, [
          node(type1, 2, 98, [
            node(bindFn, 3, 40, [node(uapiBind, 4, 39, [leaf(svmBind, 5, 30)])]),
            node(bindFn, 41, 90, [node(uapiBind, 42, 89, [leaf(svmBind, 43, 80)])]),
          ]),
        ]),
      ]),
    ];
    const m = treeMetrics(tree);
    // type1 (unsigned long), bind fn (void *), uapi (void __user *); the entry's own arg is the ABI
    expect(m.typeErasureHops).toBe(3);
    expect(m.frames).toBe(9);
    expect(m.maxDepth).toBe(6);
    expect(m.layers).toEqual(['syscall', 'vfio', 'iommu-uapi', 'intel']);
    expect(m.layerCrossings).toBe(1 + 2 + 2);
    expect(m.provenance).toBe('posted');
    expect(m.handlers).toEqual({ bind: ['vfio'] });
  });

  it('counts no hops when the type is set at the ioctl', () => {
    const ucmd: KFn = { name: 'iommufd_hwpt_alloc', layer: 'iommufd', sig: 'int iommufd_hwpt_alloc(struct iommufd_ucmd *ucmd)', prov: merged, uapi: { param: 'ucmd->cmd', ctype: 'struct iommu_hwpt_alloc *' } };
    const entry: KFn = { ...unl, name: 'iommufd_fops_ioctl', layer: 'iommufd' };
    expect(treeMetrics([node(sys, 0, 9, [node(entry, 1, 8, [leaf(ucmd, 2, 7)])])]).typeErasureHops).toBe(0);
  });
  it('reads the same figures off the flat trace buffers as off the tree, across merged threads', () => {
    // the tree of the first case, recorded by the sim on the VMM thread, plus a second thread's
    // span merged in (a chain of work another thread did during the step)
    const sim = new Sim();
    const vmm = sim.sched.spawn('vmm');
    const other = sim.sched.spawn('kworker');
    const libcopy: KFn = { name: '_copy_from_user', layer: 'lib', sig: 'unsigned long _copy_from_user(void *to, const void __user *from, unsigned long n)', prov: merged, inheritLayer: true };
    const bindOnce = (): void => sim.call(bindFn, () => sim.call(uapiBind, () => sim.call(svmBind, () => sim.call(libcopy, () => sim.charge(P.copyFromUser)))));
    const rec = sim.step(vmm, '1', 'bind', () =>
      sim.call(sys, () => sim.call(unl, () => sim.call(type1, () => {
        bindOnce();
        bindOnce();
      }, 'bind'))),
    );
    const side = sim.step(other, '1', 'bind', () => sim.call(uapiBind, () => sim.call(svmBind, () => undefined)));
    rec.mergedBufs.push(side.traceBuf);
    const flat = bufferMetrics([rec.traceBuf, ...rec.mergedBufs]);
    expect(flat).toEqual(treeMetrics(rec.trace));
    // the kept flat form reads back as the same SpanJson trees, per-call tags included
    const kept = flattenTrace([rec.traceBuf, ...rec.mergedBufs]);
    expect(kept.fns.length).toBe(7);
    expect(flatTraceJson(structuredClone(kept))).toEqual(spanTreeJson(rec.trace));
    expect(flatTraceJson(kept)[0]!.children[0]!.children[0]).toMatchObject({ name: 'vfio_iommu_type1_ioctl', op: 'bind' });
    expect(flat).toMatchObject({ frames: 13, maxDepth: 7, typeErasureHops: 3, layers: ['syscall', 'vfio', 'iommu-uapi', 'intel'], handlers: { bind: ['vfio'] } });
  });
});

describe('function_graph rendering', () => {
  it('renders nesting, leaves and durations as ftrace does', () => {
    const tree = [node(unl, 0, 1234, [leaf(type1, 100, 150), node(bindFn, 200, 1200, [leaf(svmBind, 300, 1100)])])];
    expect(functionGraph(tree, { cpu: 1 })).toBe(
      [
        ' 1)                |  vfio_fops_unl_ioctl() {',
        ' 1)    0.050 us    |    vfio_iommu_type1_ioctl();',
        ' 1)                |    vfio_dev_bind_gpasid_fn() {',
        ' 1)    0.800 us    |      intel_svm_bind_gpasid();',
        ' 1)    1.000 us    |    }',
        ' 1)    1.234 us    |  }',
      ].join('\n'),
    );
    expect(functionGraph([leaf(svmBind, 0, 10)], { annotate: true })).toContain('/* intel; posted */');
  });

  it('records spans from the sim with clock times, and a JSON tree with signatures', () => {
    const sim = new Sim();
    const t = sim.sched.spawn('vmm');
    const rec = sim.step(t, '1', 'bind', () =>
      sim.call(sys, () => {
        sim.charge(P.syscall);
        sim.call(unl, () => sim.charge(P.ioctlDispatch), 'bind');
      }),
    );
    expect(rec.trace).toHaveLength(1);
    const j = spanTreeJson(rec.trace);
    expect(j[0]!.name).toBe('__x64_sys_ioctl');
    expect(j[0]!.ns).toBe(sim.prices.ns[P.syscall]! + sim.prices.ns[P.ioctlDispatch]!);
    expect(j[0]!.children[0]).toMatchObject({ name: 'vfio_fops_unl_ioctl', layer: 'vfio', op: 'bind', uapi: { ctype: 'unsigned long' } });
    expect(j[0]!.children[0]!.sig).toMatch(/^static long vfio_fops_unl_ioctl/);
  });

  it('keeps layers and depths with tracing off, and builds no spans', () => {
    const sim = new Sim({ trace: false });
    const t = sim.sched.spawn('vmm');
    let depth = -2;
    const rec = sim.step(t, '1', 'x', () =>
      sim.call(sys, () => sim.call(unl, () => sim.call(type1, () => {
        depth = sim.tracer.depthBelowSyscall();
        sim.charge(P.mutex);
      }))),
    );
    expect(depth).toBe(2);
    expect(rec.trace).toEqual([]);
    expect([...rec.prims.keys()]).toEqual(['vfio']);
  });
});
