// DownMarks on the coordinator's one table: an item per xPU holding the last down the API accepted.
import { ConditionalCheckFailedException, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { NativeEvent } from '../core/types.ts';
import type { DownMarks } from '../ports/down-marks.ts';

/** A mark only matters while its event may still sit in the queue (or its DLQ): 14 days, SQS's longest retention. */
const MARK_DAYS = 14;
const key = (node: string, xpu: string) => ({ pk: `DOWN#${node}#${xpu}`, sk: 'DOWN' });

export class DynamoDownMarks implements DownMarks {
  readonly #doc: DynamoDBDocumentClient;
  readonly #table: string;

  constructor(client: DynamoDBClient, table: string) {
    this.#doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
    this.#table = table;
  }

  async mark(ev: NativeEvent): Promise<void> {
    if (!ev.xpu) return;
    try {
      await this.#doc.send(
        new PutCommand({
          TableName: this.#table,
          Item: { ...key(ev.node, ev.xpu), receivedAt: ev.receivedAt, event: ev, ttl: Math.floor(Date.now() / 1000) + MARK_DAYS * 86400 },
          ConditionExpression: 'attribute_not_exists(pk) OR receivedAt <= :r',
          ExpressionAttributeValues: { ':r': ev.receivedAt },
        }),
      );
    } catch (err) {
      // A later-received down is marked already: it is the one a cancel must see.
      const name = (err as { name?: string })?.name;
      if (!(err instanceof ConditionalCheckFailedException) && name !== 'ConditionalCheckFailedException') throw err;
    }
  }

  async last(node: string, xpu: string): Promise<NativeEvent | undefined> {
    const res = await this.#doc.send(new GetCommand({ TableName: this.#table, Key: key(node, xpu), ConsistentRead: true }));
    return res.Item?.event as NativeEvent | undefined;
  }
}
