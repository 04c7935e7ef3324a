// Many executions in flight at once: 1,000 parked callbacks all complete after 1,000 SendTaskSuccess calls.
import { afterEach, expect, test } from 'vitest';
import { ListExecutionsCommand, SendTaskSuccessCommand, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { ManualClock } from '../../local/sfn/clock.ts';
import { eventually, startHarness, type Harness } from './fixtures/sfn/harness.ts';

let h: Harness;
afterEach(() => h.close());

async function inBatches<T>(items: T[], size: number, fn: (item: T) => Promise<unknown>) {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

test('1,000 concurrent parked executions all succeed after 1,000 SendTaskSuccess calls', async () => {
  const N = 1000;
  h = await startHarness({ clock: new ManualClock() });
  const stateMachineArn = await h.createMachine('approval', 'callback.asl.json', { ApproverFunction: 'approver' });
  const ids = Array.from({ length: N }, (_, i) => i);

  await inBatches(ids, 50, (i) =>
    h.client.send(new StartExecutionCommand({ stateMachineArn, name: `e-${i}`, input: JSON.stringify({ request: i }) })),
  );
  const tokens = await eventually('every execution to be waiting with a task token', () => {
    const calls = h.callsTo('approver');
    return calls.length === N ? calls.map((c) => c.payload.taskToken as string) : undefined;
  });
  expect(new Set(tokens).size).toBe(N);
  await inBatches(tokens, 50, (taskToken) => h.client.send(new SendTaskSuccessCommand({ taskToken, output: '{"ok":true}' })));

  const succeeded = await eventually(
    'every execution to succeed',
    async () => {
      let n = 0;
      let nextToken: string | undefined;
      do {
        const page = await h.client.send(
          new ListExecutionsCommand({ stateMachineArn, statusFilter: 'SUCCEEDED', maxResults: 1000, nextToken }),
        );
        n += page.executions!.length;
        nextToken = page.nextToken;
      } while (nextToken);
      return n === N ? n : undefined;
    },
    30_000,
  );
  expect(succeeded).toBe(N);
});
