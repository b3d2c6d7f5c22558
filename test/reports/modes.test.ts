import { describe, expect, it } from 'vitest';
import { buildReportModel, invalidateModesSentence } from '../../reports/model.ts';
import { renderText } from '../../reports/text.ts';
import { run, step } from './fixtures.ts';

const s = (syscalls: number) => step({ path: '1', op: 'invalidate', prims: { syscall: { syscall: [syscalls] } }, numbers: { syscalls, ioctls: syscalls } });

describe('the invalidation modes a report compares', () => {
  it('says when the modes recorded identical figures everywhere, and names the scenarios where they did not', () => {
    const same = [run('storm', { tunnel: [s(4)], iommufd: [s(4)] }, { invalidate: 'qemu' }), run('storm', { tunnel: [s(4)], iommufd: [s(4)] }, { invalidate: 'batched' })];
    const m = buildReportModel(same, { samples: 10 });
    expect(m.invalidateModesDiffer).toEqual([]);
    expect(invalidateModesSentence(m)).toBe('Invalidation modes: qemu, batched; they recorded identical figures in every scenario, on both stacks.');
    expect(renderText(m)).toContain('identical figures in every scenario');

    const differ = [...same, run('unmap', { tunnel: [s(4)], iommufd: [s(4)] }, { invalidate: 'qemu' }), run('unmap', { tunnel: [s(4)], iommufd: [s(1)] }, { invalidate: 'batched' })];
    const d = buildReportModel(differ, { samples: 10 });
    expect(d.invalidateModesDiffer).toEqual(['unmap']);
    expect(invalidateModesSentence(d)).toBe('Invalidation modes: qemu, batched; their figures differ in unmap.');

    const one = buildReportModel([same[0]!], { samples: 10 });
    expect(one.invalidateModesDiffer).toBeNull();
    expect(invalidateModesSentence(one)).toBe('Invalidation modes: qemu.');
  });
});
