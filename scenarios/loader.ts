/**
 * Loads a scenario file: YAML → zod schema → cross-references → expansion → sequence checks.
 * Problems come back as data (`{file, line, path, message}`), never as exceptions.
 */
import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, type YAMLError } from 'yaml';
import { buildScenario } from './build.ts';
import { expand } from './expand.ts';
import { ScenarioError } from './issues.ts';
import { scenarioFileSchema } from './schema.ts';
import { checkSequence } from './sequence.ts';
import type { LoadedScenario, LoadResult, ScenarioIssue } from './types.ts';
import { YamlLines } from './yaml-lines.ts';
import { zodIssuesToScenarioIssues } from './zod-issues.ts';

/** Integers arrive as bigint so that big hex addresses stay exact; safe ones become numbers, others stay bigint to be refused. */
function normalizeIntegers(v: unknown): unknown {
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  if (Array.isArray(v)) return v.map(normalizeIntegers);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalizeIntegers(x)]));
  return v;
}

function yamlMessage(e: YAMLError): string {
  if (e.code === 'MULTIPLE_DOCS') return 'YAML: a scenario file holds one document (found a second ---)';
  return `YAML: ${e.message.split('\n')[0]!}`;
}

const failed = (errors: readonly ScenarioIssue[], warnings: readonly ScenarioIssue[] = []): LoadResult => ({ ok: false, errors, warnings });

export function loadScenarioText(text: string, file: string): LoadResult {
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, intAsBigInt: true, prettyErrors: false, uniqueKeys: true });
  const lines = new YamlLines(doc, counter);
  if (doc.errors.length) {
    return failed(doc.errors.map((e) => ({ file, line: lines.lineAt(e.pos[0]), path: '', message: yamlMessage(e) })));
  }
  const data = normalizeIntegers(doc.toJS({ maxAliasCount: 100 }));
  if (data === null || data === undefined) {
    return failed([{ file, line: 1, path: '', message: 'the file holds no scenario (expected name, description, vm, devices, steps)' }]);
  }

  const parsed = scenarioFileSchema.safeParse(data);
  if (!parsed.success) return failed(zodIssuesToScenarioIssues(parsed.error.issues, data, lines, file));

  const raw = parsed.data;
  const built = buildScenario(raw, lines, file);
  if (built.issues.length) return failed(built.issues);

  const flat = expand(built.tree);
  const sequence = checkSequence(flat, file);
  if (sequence.errors.length) return failed(sequence.errors, sequence.warnings);

  const scenario: LoadedScenario = {
    name: raw.name,
    description: raw.description.trim(),
    file,
    vm: {
      memoryBytes: raw.vm.memory,
      vcpus: raw.vm.vcpus,
      ...(raw.vm.viommu === false ? { viommu: false as const } : {}),
      ...(raw.vm['pasid-bits'] === undefined ? {} : { pasidBits: raw.vm['pasid-bits'] }),
    },
    devices: built.devices,
    tree: built.tree,
    flat,
  };
  return { ok: true, scenario, warnings: sequence.warnings };
}

export function loadScenarioFile(path: string, displayName = path): LoadResult {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    return failed([{ file: displayName, line: 0, path: '', message: `cannot read the file (${code})` }]);
  }
  return loadScenarioText(text, displayName);
}

/** The scenario of a successful load; throws a ScenarioError listing the issues otherwise. */
export function scenarioOrThrow(r: LoadResult): LoadedScenario {
  if (r.ok) return r.scenario;
  throw new ScenarioError('the scenario did not load', r.errors);
}
