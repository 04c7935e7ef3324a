// Queries read to their end: a Query stops at 1 MB (or its Limit) and says where to go on.
import { type DynamoDBDocumentClient, QueryCommand, type QueryCommandInput } from '@aws-sdk/lib-dynamodb';

/** Every item the Query matches, page after page (LastEvaluatedKey). */
export async function queryAll(doc: DynamoDBDocumentClient, input: QueryCommandInput): Promise<Record<string, unknown>[]> {
  const items: Record<string, unknown>[] = [];
  let startKey: Record<string, unknown> | undefined;
  do {
    const res = await doc.send(new QueryCommand({ ...input, ExclusiveStartKey: startKey }));
    items.push(...(res.Items ?? []));
    startKey = res.LastEvaluatedKey;
  } while (startKey);
  return items;
}

/**
 * Every item of partition `pk`, strongly consistent: the small partitions of the table (budgets and their
 * spilled nodes, the budget queue, holds, kept signals) are read in one go by those who decide on all of them.
 */
export function queryPartition(doc: DynamoDBDocumentClient, table: string, pk: string): Promise<Record<string, unknown>[]> {
  return queryAll(doc, {
    TableName: table,
    KeyConditionExpression: 'pk = :p',
    ExpressionAttributeValues: { ':p': pk },
    ConsistentRead: true,
  });
}
