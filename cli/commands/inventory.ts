// `rebootctl inventory check|push`: validate a NODES_FILE, and store it (tokens hashed) for the AWS runtime.
import type { Command } from 'commander';
import { EXAMPLE_NODES_FILE } from '../../local/config.ts';

export function registerInventoryCommands(program: Command): void {
  const inv = program.command('inventory').description('validate the inventory, or push it to the AWS deployment');

  inv
    .command('check')
    .description('parse and validate an inventory file; unknown keys are errors naming file, key and line')
    .option('--nodes-file <file>', 'inventory YAML/JSON (env NODES_FILE)', process.env.NODES_FILE ?? EXAMPLE_NODES_FILE)
    .action(async (opts: { nodesFile: string }) => {
      const { loadInventoryFile } = await import('../../lambdas/core/inventory.ts');
      try {
        const inventory = loadInventoryFile(opts.nodesFile);
        const xpus = inventory.nodes.reduce((n, node) => n + node.xpus.length, 0);
        console.log(`${opts.nodesFile}: ok, ${inventory.nodes.length} nodes, ${xpus} xPUs`);
      } catch (err) {
        console.error((err as Error).message);
        process.exitCode = 2;
      }
    });

  inv
    .command('push')
    .description('store the inventory in the deployment\'s table with every token replaced by its SHA-256')
    .requiredOption('--table <name>', 'the RebootsTable name (stack output)')
    .option('--nodes-file <file>', 'inventory YAML/JSON (env NODES_FILE)', process.env.NODES_FILE ?? EXAMPLE_NODES_FILE)
    .option('--operator-token-env <VAR>', 'environment variable holding the operator token', 'OPERATOR_TOKEN')
    .option('--region <region>', 'AWS region (default: from the AWS environment)')
    .action(async (opts: { table: string; nodesFile: string; operatorTokenEnv: string; region?: string }) => {
      const { loadInventoryFile, withHashedTokens, hashToken } = await import('../../lambdas/core/inventory.ts');
      const { DynamoDBClient } = await import('@aws-sdk/client-dynamodb');
      const { DynamoRebootStore } = await import('../../lambdas/adapters/dynamo-store.ts');
      try {
        const inventory = loadInventoryFile(opts.nodesFile);
        const operator = process.env[opts.operatorTokenEnv];
        if (!operator) throw new Error(`${opts.operatorTokenEnv} is not set: the operator token is needed (its hash is stored)`);
        const stored = { ...withHashedTokens(inventory), operatorTokenHash: hashToken(operator) };
        const store = new DynamoRebootStore(new DynamoDBClient(opts.region ? { region: opts.region } : {}), opts.table);
        await store.putStoredInventory(stored);
        console.log(`pushed ${inventory.nodes.length} nodes to ${opts.table} (tokens stored as SHA-256 only)`);
      } catch (err) {
        console.error(`rebootctl inventory push: ${(err as Error).message}`);
        process.exitCode = 1;
      }
    });
}
