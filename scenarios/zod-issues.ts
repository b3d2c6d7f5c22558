/** Turns zod's issues into scenario issues with a line, a 1-based path and a plain message. */
import type { z } from 'zod';
import { displayPath } from './issues.ts';
import { KEYS } from './schema.ts';
import type { ScenarioIssue } from './types.ts';
import { show } from './units.ts';
import type { YamlLines } from './yaml-lines.ts';

type ZodIssue = z.core.$ZodIssue;
type Path = readonly PropertyKey[];

const EXPECTED: Record<string, string> = {
  string: 'a string',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
  number: 'a number',
};

function valueAt(data: unknown, path: Path): unknown {
  let v = data;
  for (const seg of path) v = v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[seg] : undefined;
  return v;
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** true when the last key of `path` is missing from its (existing) parent mapping */
function isMissingKey(data: unknown, path: Path): boolean {
  const parent = valueAt(data, path.slice(0, -1));
  const key = path[path.length - 1];
  return isMapping(parent) && typeof key === 'string' && !(key in parent);
}

/** a step in `steps` (top level or of a repeat) or in a parallel branch */
function isStepPath(path: Path): boolean {
  const n = path.length;
  return typeof path[n - 1] === 'number' && (path[n - 2] === 'steps' || (typeof path[n - 2] === 'number' && path[n - 3] === 'branches'));
}

/** which kind of mapping sits at `path`, for the list of keys it takes */
function keysAt(data: unknown, path: Path): readonly string[] {
  const last = path[path.length - 1];
  const beforeLast = path[path.length - 2];
  if (path.length === 0) return KEYS.top!;
  if (path.length === 1 && last === 'vm') return KEYS.vm!;
  if (path.length === 2 && path[0] === 'devices') return KEYS.device!;
  if (path.length === 4 && path[0] === 'devices') return KEYS['vq-group']!;
  if (last === 'expect') return KEYS.expect!;
  if (last === 'probe') return KEYS.probe!;
  if (beforeLast === 'expect') return KEYS.outcome!;
  const op = valueAt(data, path);
  return (isMapping(op) && typeof op.op === 'string' && KEYS[op.op]) || [];
}

export function zodIssuesToScenarioIssues(issues: readonly ZodIssue[], data: unknown, lines: YamlLines, file: string): ScenarioIssue[] {
  const out: ScenarioIssue[] = [];
  const push = (path: Path, message: string, key = false): void => {
    out.push({ file, line: lines.lineOf(path, { key }), path: displayPath(path), message });
  };

  const visit = (iss: ZodIssue, prefix: Path): void => {
    const path = [...prefix, ...iss.path];
    const value = valueAt(data, path);
    if (isMissingKey(data, path)) return push(path, `missing key '${String(path[path.length - 1])}'`);
    switch (iss.code) {
      case 'unrecognized_keys': {
        const allowed = keysAt(data, path);
        for (const k of iss.keys) {
          push([...path, k], `unknown key '${k}'${allowed.length ? ` (expected one of: ${allowed.join(', ')})` : ''}`, true);
        }
        return;
      }
      case 'invalid_union': {
        if ('discriminator' in iss && iss.discriminator) return push(path, iss.message);
        // a union of a string and a mapping: for a mapping, report what is wrong inside it
        const inside = iss.errors.filter((branch) => !branch.every((b) => b.code === 'invalid_type' && b.path.length === 0));
        if (isMapping(value) && inside.length === 1) {
          for (const b of inside[0]!) visit(b, path);
          return;
        }
        return push(path, iss.message);
      }
      case 'invalid_type':
        if (iss.expected === 'object' && isStepPath(path)) return push(path, `expected a step ({ op: …, … }), got ${show(value)}`);
        return push(path, `expected ${EXPECTED[iss.expected] ?? iss.expected}, got ${show(value)}`);
      case 'invalid_value':
        return push(path, `expected one of ${iss.values.map(String).join(', ')}, got ${show(value)}`);
      default:
        return push(path, iss.message);
    }
  };

  for (const iss of issues) visit(iss, []);
  return out;
}
