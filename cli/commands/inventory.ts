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
        // A file that fails the check is the command's answer, not a usage error: 1, as every failed check.
        console.error((err as Error).message);
        process.exitCode = 1;
      }
    });

  inv
    .command('push')
    .description("store the inventory in the deployment's table (one item per node and per token, tokens as SHA-256 only)")
    .requiredOption('--table <name>', 'the RebootsTable name (stack output)')
    .option('--nodes-file <file>', 'inventory YAML/JSON (env NODES_FILE)', process.env.NODES_FILE ?? EXAMPLE_NODES_FILE)
    .option('--operator-token-env <VAR>', 'environment variable holding the operator token', 'OPERATOR_TOKEN')
    .option('--region <region>', 'AWS region (default: from the AWS environment)')
    .option('--endpoint <url>', 'DynamoDB endpoint (e.g. a local dynalite); default: AWS')
    .option('--concurrency <n>', 'BatchWriteItem calls in flight (25 items each)', '16')
    .action(
      async (opts: {
        table: string;
        nodesFile: string;
        operatorTokenEnv: string;
        region?: string;
        endpoint?: string;
        concurrency: string;
      }) => {
        try {
          const started = Date.now();
          const res = await pushInventory({
            ...opts,
            operatorToken: process.env[opts.operatorTokenEnv],
            operatorTokenEnv: opts.operatorTokenEnv,
            concurrency: Number(opts.concurrency),
          });
          console.log(
            `pushed ${res.nodes} nodes and ${res.tokens} token hashes to ${opts.table} in ${((Date.now() - started) / 1000).toFixed(1)} s ` +
              `(${res.calls} batch writes, ${res.deleted} stale items removed; tokens stored as SHA-256 only)`,
          );
        } catch (err) {
          // DynamoDB says only "Requested resource not found": name the table the operator gave.
          const why = (err as Error).name === 'ResourceNotFoundException' ? `table ${opts.table} not found: ` : '';
          console.error(`rebootctl inventory push: ${why}${(err as Error).message}`);
          process.exitCode = 1;
        }
      },
    );
}

/** `inventory push` without the CLI around it (tests, scripts/smoke.ts). */
export async function pushInventory(opts: {
  table: string;
  nodesFile: string;
  operatorToken: string | undefined;
  operatorTokenEnv?: string;
  region?: string;
  endpoint?: string;
  concurrency?: number;
}) {
  const { loadInventoryFile, withHashedTokens, hashToken } = await import('../../lambdas/core/inventory.ts');
  const { DynamoDBClient } = await import('@aws-sdk/client-dynamodb');
  const { DynamoInventory } = await import('../../lambdas/adapters/dynamo-inventory.ts');
  const inventory = loadInventoryFile(opts.nodesFile);
  if (!opts.operatorToken)
    throw new Error(`${opts.operatorTokenEnv ?? 'OPERATOR_TOKEN'} is not set: the operator token is needed (its hash is stored)`);
  const stored = { ...withHashedTokens(inventory), operatorTokenHash: hashToken(opts.operatorToken) };
  const client = new DynamoDBClient({
    ...(opts.region ? { region: opts.region } : {}),
    ...(opts.endpoint
      ? { endpoint: opts.endpoint, region: opts.region ?? 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } }
      : {}),
  });
  try {
    return await new DynamoInventory(client, opts.table).push(stored, { concurrency: opts.concurrency });
  } finally {
    client.destroy();
  }
}
