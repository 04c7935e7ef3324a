// rebootctl's entry: the command tree is built in program.ts.
import { buildProgram } from './program.ts';

await buildProgram().parseAsync(process.argv);
