/**
 * The ioasid-sim CLI. Usage errors (an unknown command or option, a bad argument) exit 2 with one
 * line on stderr and no stack trace; a failure of the simulation itself exits 1.
 */
import { Command, CommanderError } from 'commander';
import { registerCommands } from './commands/index.ts';
import { UsageError } from './usage.ts';

export function buildProgram(): Command {
  const program = new Command('ioasid-sim')
    .description(
      'Simulates two Linux IOMMU uAPI designs on one emulated Intel VT-d: the vSVA v8 tunnel ' +
        'through VFIO (design A, "tunnel") and an IOMMU fd that VFIO and vDPA register with ' +
        '(design B, "iommufd").',
    )
    .version('0.1.0')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ outputError: (s, write) => write(s.split('\n')[0]! + '\n') });
  registerCommands(program);
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv as string[], { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
      // our own commands choose their exit code (1: a scenario failed); commander's usage errors are 2
      return e.code.startsWith('ioasid-sim.') ? e.exitCode : 2;
    }
    if (e instanceof UsageError) {
      process.stderr.write(`error: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}

if (process.argv[1] && /ioasid-sim(\.js)?$|main\.ts$/.test(process.argv[1])) {
  process.exitCode = await main(process.argv.slice(2));
}
