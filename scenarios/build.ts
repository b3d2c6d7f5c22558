/**
 * Resolves a schema-valid file into devices and the step tree, checking what the schema alone
 * cannot: device references, PASID widths, vq groups, address ranges, expectations per op,
 * parallel blocks against the VM's vCPUs, and how far `repeat` expands.
 */
import { displayPath } from './issues.ts';
import { OK_ON_BOTH, parseOutcome } from './outcomes.ts';
import { MAX_FLAT_STEPS, type RawDevice, type RawLeafStep, type RawScenario, type RawStep } from './schema.ts';
import type { DeviceSpec, Expectation, LeafStep, Outcome, ScenarioIssue, StepNode } from './types.ts';
import { hex, MAX_PASID_BITS, PAGE_SIZE, USER_VA_END } from './units.ts';
import type { YamlLines } from './yaml-lines.ts';

type Path = readonly (string | number)[];

export interface Built {
  readonly devices: readonly DeviceSpec[];
  readonly tree: readonly StepNode[];
  readonly issues: readonly ScenarioIssue[];
}

export function buildScenario(raw: RawScenario, lines: YamlLines, file: string): Built {
  const issues: ScenarioIssue[] = [];
  const report = (path: Path, message: string): void => {
    issues.push({ file, line: lines.lineOf(path), path: displayPath(path), message });
  };

  const devices = buildDevices(raw.devices, lines, report);
  const byName = new Map(devices.map((d) => [d.name, d]));
  const declared = devices.map((d) => d.name).join(', ');

  const checkDevice = (path: Path, name: string): DeviceSpec | undefined => {
    const d = byName.get(name);
    if (!d) report([...path, 'device'], `unknown device '${name}' (declared: ${declared})`);
    return d;
  };

  const noViommu = raw.vm.viommu === false;
  const viommuBits = raw.vm['pasid-bits'] ?? MAX_PASID_BITS;
  /** `bindBeyond`: undefined for ops other than bind; for a bind, whether it may pass the width */
  const checkPasid = (path: Path, d: DeviceSpec | undefined, pasid: number, bindBeyond?: boolean): void => {
    if (noViommu) {
      report([...path, 'pasid'], 'the VM has no vIOMMU (viommu: false): the guest has no PASID table, so nothing binds and a DMA names gpa');
      return;
    }
    if (!d) return;
    const hint = bindBeyond === false ? '; a misbehaving guest’s bind beyond it must expect an errno on both stacks' : '';
    if (d.pasidBits === 0) report([...path, 'pasid'], `${d.name} has no PASID capability (pasid: false)`);
    else if (pasid >= 2 ** d.pasidBits && !bindBeyond) {
      report([...path, 'pasid'], `PASID ${pasid} is beyond ${d.name}'s ${d.pasidBits}-bit PASID width (max ${2 ** d.pasidBits - 1})${hint}`);
    } else if (pasid >= 2 ** viommuBits && !bindBeyond) {
      report([...path, 'pasid'], `PASID ${pasid} is beyond the vIOMMU's ${viommuBits}-bit PASID width (vm pasid-bits; max ${2 ** viommuBits - 1})${hint}`);
    }
  };

  const checkRange = (path: Path, va: number, bytes: number, pageAligned: boolean): void => {
    if (pageAligned && va % PAGE_SIZE !== 0) report([...path, 'va'], `va ${hex(va)} is not page-aligned (4K pages)`);
    else if (va + bytes > USER_VA_END) {
      report([...path, 'va'], `the range ends at ${hex(va + bytes)}, beyond the 47-bit user address space (${hex(USER_VA_END)})`);
    }
  };

  const resolveExpect = (path: Path, s: RawLeafStep, d: DeviceSpec | undefined): Expectation => {
    if (s.expect === undefined) return OK_ON_BOTH;
    // a probed rebind's outcome is its probe DMA's
    const as = s.op === 'rebind' && s.probe !== undefined ? 'dma' : s.op;
    const one = (v: unknown, at: Path): Outcome => {
      const o = parseOutcome(v, as);
      if ('problem' in o) {
        report(at, o.problem);
        return { kind: 'ok' };
      }
      if (o.kind === 'iopf' && d && !d.pri) report(at, `expect iopf needs a device with PRI (${d.name} has pri: false)`);
      return o;
    };
    const at = [...path, 'expect'];
    if (typeof s.expect === 'string') {
      const o = one(s.expect, at);
      return { tunnel: o, iommufd: o };
    }
    return {
      tunnel: one(s.expect.tunnel, [...at, 'tunnel']),
      iommufd: one(s.expect.iommufd, [...at, 'iommufd']),
      reason: s.expect.reason.trim(),
    };
  };

  const leaf = (path: Path, s: RawLeafStep): LeafStep => {
    switch (s.op) {
      case 'assign':
      case 'unassign':
        checkDevice(path, s.device);
        return { op: s.op, device: s.device };
      case 'guest-map':
        checkRange(path, s.va, s.pages * PAGE_SIZE, true);
        return { op: s.op, process: s.process, va: s.va, pages: s.pages, write: s.write ?? false, onDemand: s['on-demand'] ?? false };
      case 'guest-unmap':
        checkRange(path, s.va, s.pages * PAGE_SIZE, true);
        return { op: s.op, process: s.process, va: s.va, pages: s.pages };
      case 'bind': {
        const d = checkDevice(path, s.device);
        checkPasid(path, d, s.pasid, expectsErrnoOnBoth(s.expect));
        checkVqGroup(path, d, s['vq-group'], report);
        if ((s.process === undefined) === (s.root === undefined)) {
          report(path, 'a bind names either process (whose page table the guest binds) or root (a misbehaving guest’s first-stage root, a guest physical address), not both');
        } else if (s.root !== undefined && s.root % PAGE_SIZE !== 0) {
          report([...path, 'root'], `root ${hex(s.root)} is not 4K-aligned (a first-stage table is a page)`);
        }
        const vq = s['vq-group'];
        return {
          op: s.op,
          device: s.device,
          pasid: s.pasid,
          ...(s.process === undefined ? {} : { process: s.process }),
          ...(s.root === undefined ? {} : { root: s.root }),
          ...(vq === undefined ? {} : { vqGroup: vq }),
        };
      }
      case 'rebind': {
        checkPasid(path, checkDevice(path, s.device), s.pasid);
        if (s.probe) checkRange([...path, 'probe'], s.probe.va, s.probe.len, false);
        const probe = s.probe && { va: s.probe.va, len: s.probe.len, write: s.probe.write ?? false };
        return { op: s.op, device: s.device, pasid: s.pasid, process: s.process, ...(probe ? { probe } : {}) };
      }
      case 'unbind':
        checkPasid(path, checkDevice(path, s.device), s.pasid);
        return { op: s.op, device: s.device, pasid: s.pasid };
      case 'dma': {
        const d = checkDevice(path, s.device);
        if (s.gpa !== undefined) {
          if (s.pasid !== undefined || s.va !== undefined) report(path, 'a dma names either pasid and va (a PASID request to a process address) or gpa (a request without PASID), not both');
          return { op: s.op, device: s.device, pasid: null, va: s.gpa, len: s.len, write: s.write ?? false };
        }
        if (s.pasid === undefined || s.va === undefined) {
          report(path, `a dma names pasid and va (a PASID request to a process address), or gpa (a request without PASID); missing ${s.pasid === undefined ? 'pasid' : 'va'}`);
          return { op: s.op, device: s.device, pasid: null, va: s.va ?? 0, len: s.len, write: s.write ?? false };
        }
        checkPasid(path, d, s.pasid);
        checkRange(path, s.va, s.len, false);
        return { op: s.op, device: s.device, pasid: s.pasid, va: s.va, len: s.len, write: s.write ?? false };
      }
      case 'close': {
        const seen = new Set<string>();
        for (const [i, fd] of (s.order ?? []).entries()) {
          if (fd !== 'iommu' && !byName.has(fd)) report([...path, 'order', i], `unknown fd '${fd}' (expected iommu or a device: ${declared})`);
          else if (seen.has(fd)) report([...path, 'order', i], `'${fd}' is listed twice`);
          seen.add(fd);
        }
        return { op: s.op, from: s.from ?? 'vmm', ...(s.order === undefined ? {} : { order: [...s.order] }) };
      }
    }
  };

  const nodes = (list: readonly RawStep[], at: Path, prefix: string, inBranch: boolean): StepNode[] =>
    list.map((s, i) => {
      const path = [...at, i];
      const exec = prefix ? `${prefix}.${i + 1}` : String(i + 1);
      const line = lines.lineOf(path);
      if (s.op === 'repeat') {
        const body = nodes(s.steps, [...path, 'steps'], `${exec}.*`, inBranch);
        return { kind: 'repeat', path: exec, line, times: s.times, body };
      }
      if (s.op === 'parallel') {
        if (inBranch) report([...path, 'op'], 'a parallel block inside a parallel branch is not supported (each branch is one vCPU)');
        if (s.branches.length > raw.vm.vcpus) {
          report([...path, 'branches'], `${s.branches.length} branches need ${s.branches.length} vCPUs; the VM has ${raw.vm.vcpus}`);
        }
        const branches = s.branches.map((b, k) => nodes(b, [...path, 'branches', k], `${exec}.${k + 1}`, true));
        return { kind: 'parallel', path: exec, line, branches };
      }
      const step = leaf(path, s);
      return { kind: 'leaf', path: exec, line, step, expect: resolveExpect(path, s, byName.get('device' in s ? s.device : '')) };
    });

  const tree = nodes(raw.steps, ['steps'], '', false);
  const total = countFlat(tree);
  if (total > MAX_FLAT_STEPS) report(['steps'], `the steps expand to ${total} steps; at most ${MAX_FLAT_STEPS}`);
  return { devices, tree, issues };
}

function buildDevices(raw: readonly RawDevice[], lines: YamlLines, report: (p: Path, m: string) => void): DeviceSpec[] {
  const first = new Map<string, number>();
  return raw.map((d, i) => {
    const at = ['devices', i];
    const line = lines.lineOf(at);
    const seen = first.get(d.name);
    if (seen !== undefined) report([...at, 'name'], `device '${d.name}' is declared twice (first at line ${seen})`);
    else first.set(d.name, line);
    if (d.pri && !d.ats) report([...at, 'pri'], 'pri: true needs ats: true (a page request follows a failed ATS translation)');
    const vq = d['vq-groups'] ?? [];
    if (vq.length && d.type !== 'vdpa') report([...at, 'vq-groups'], `vq-groups are for vdpa devices (${d.name} is ${d.type})`);
    const groupOfVq = new Map<number, string>();
    const names = new Set<string>();
    for (const [g, grp] of vq.entries()) {
      if (names.has(grp.name)) report([...at, 'vq-groups', g, 'name'], `vq group '${grp.name}' is declared twice`);
      names.add(grp.name);
      for (const [k, q] of grp.vqs.entries()) {
        const other = groupOfVq.get(q);
        if (other !== undefined) report([...at, 'vq-groups', g, 'vqs', k], `virtqueue ${q} is already in group '${other}'`);
        groupOfVq.set(q, grp.name);
      }
    }
    const pasidBits = d.pasid === true ? MAX_PASID_BITS : d.pasid === false ? 0 : d.pasid;
    return {
      name: d.name,
      type: d.type,
      pasidBits,
      ats: d.ats,
      pri: d.pri,
      ...(d.group === undefined ? {} : { group: d.group }),
      vqGroups: vq.map((g) => ({ name: g.name, vqs: [...g.vqs] })),
      line,
    };
  });
}

/** the raw `expect` names an errno on both stacks (a negative test everywhere) */
function expectsErrnoOnBoth(e: RawLeafStep['expect']): boolean {
  const errno = (v: unknown): boolean => {
    const o = parseOutcome(v, 'bind');
    return 'kind' in o && o.kind === 'errno';
  };
  if (e === undefined) return false;
  return typeof e === 'string' ? errno(e) : errno(e.tunnel) && errno(e.iommufd);
}

function checkVqGroup(path: Path, d: DeviceSpec | undefined, vq: string | undefined, report: (p: Path, m: string) => void): void {
  if (!d) return;
  const names = d.vqGroups.map((g) => g.name);
  if (vq === undefined) {
    if (names.length) report([...path, 'vq-group'], `a bind on vdpa device ${d.name} must name the vq-group its PASID backs (one of: ${names.join(', ')})`);
  } else if (d.type !== 'vdpa') {
    report([...path, 'vq-group'], `vq-group applies to vdpa devices (${d.name} is ${d.type})`);
  } else if (!names.includes(vq)) {
    report([...path, 'vq-group'], `unknown vq-group '${vq}' on ${d.name} (declared: ${names.join(', ') || 'none'})`);
  }
}

/** how many flat steps a tree expands to */
export function countFlat(nodes: readonly StepNode[]): number {
  let n = 0;
  for (const s of nodes) {
    if (s.kind === 'leaf') n += 1;
    else if (s.kind === 'repeat') n += s.times * countFlat(s.body);
    else for (const b of s.branches) n += countFlat(b);
  }
  return n;
}
