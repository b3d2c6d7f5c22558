import { Option, type Command } from 'commander';
import { allStructs, lookupStruct, renderStructTable, structsJson, type StructDecl } from '../../models/kernel/uapi/index.ts';
import { UsageError } from '../usage.ts';

/** `ioasid-sim structs [NAME…] [--json] [--design A|B]`: the registered uAPI structs and their layouts. */
export function registerStructs(program: Command): void {
  program
    .command('structs')
    .description('list the registered uAPI structs with sizes and offsets, computed as gcc lays them out on x86_64')
    .argument('[names...]', 'only these structs (kernel names, without "struct ")')
    .option('--json', 'print {"structs": {name: {size, fields, nested}}}')
    .addOption(new Option('--design <d>', 'only design A (tunnel) or B (iommufd)').choices(['A', 'B']))
    .action((names: string[], opts: { json?: boolean; design?: 'A' | 'B' }) => {
      let decls: readonly StructDecl[] = allStructs(opts.design);
      if (names.length) {
        decls = names.map((n) => {
          const d = lookupStruct(n);
          if (!d) throw new UsageError(`unknown struct '${n}' (try: ioasid-sim structs)`);
          return d;
        });
      }
      process.stdout.write(opts.json ? `${JSON.stringify(structsJson(decls), null, 2)}\n` : renderStructTable(decls));
    });
}
