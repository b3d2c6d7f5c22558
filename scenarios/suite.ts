/** The built-in suite: scenarios/suite/<name>.yaml, looked up by bare name. */
import { existsSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadScenarioFile } from './loader.ts';
import type { LoadResult } from './types.ts';

export const SUITE_DIR = fileURLToPath(new URL('./suite/', import.meta.url));
const PACKAGE_ROOT = fileURLToPath(new URL('../', import.meta.url));

/** repository-relative path of a suite file, as listings and issues show it */
export function suiteDisplayPath(file: string): string {
  return relative(PACKAGE_ROOT, file).replaceAll('\\', '/');
}

/** the suite's files, sorted by name */
export function suiteFiles(): string[] {
  return readdirSync(SUITE_DIR)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => join(SUITE_DIR, f));
}

export function suiteNames(): string[] {
  return suiteFiles().map((f) => f.slice(SUITE_DIR.length, -'.yaml'.length));
}

const looksLikePath = (s: string): boolean => /[\\/]/.test(s) || /\.ya?ml$/.test(s);

/** A file path as given, or a bare name resolved against the suite; undefined when neither exists. */
export function findScenario(nameOrPath: string): string | undefined {
  if (looksLikePath(nameOrPath)) return existsSync(nameOrPath) ? nameOrPath : undefined;
  const inSuite = join(SUITE_DIR, `${nameOrPath}.yaml`);
  return existsSync(inSuite) ? inSuite : undefined;
}

/** Loads a scenario by suite name or path; an unknown name is an issue, not an exception. */
export function loadScenario(nameOrPath: string): LoadResult {
  const file = findScenario(nameOrPath);
  if (file === undefined && !looksLikePath(nameOrPath)) {
    const message = `no such scenario in the suite (known: ${suiteNames().join(', ')})`;
    return { ok: false, errors: [{ file: nameOrPath, line: 0, path: '', message }], warnings: [] };
  }
  if (file === undefined) return loadScenarioFile(nameOrPath);
  return loadScenarioFile(file, looksLikePath(nameOrPath) ? nameOrPath : suiteDisplayPath(file));
}
