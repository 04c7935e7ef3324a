// Issue 14: a setting changed between runs (INGEST_VISIBILITY_SECONDS) is applied to the kept queue, not refused.
import { join } from 'node:path';
import { GetQueueAttributesCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import { startLocalSqs } from '../../local/sqs.ts';
import { tempDir } from '../support/stack.ts';

describe('local SQS settings across restarts', () => {
  it('applies another visibility timeout to the queue and keeps its messages', async () => {
    const dataDir = join(tempDir('sqs-settings'), 'sqs');
    const first = await startLocalSqs({ dataDir, visibilityTimeoutSeconds: 30 });
    await first.client.send(new SendMessageCommand({ QueueUrl: first.ingestQueueUrl, MessageBody: '{"kept":true}' }));
    await first.close();

    const second = await startLocalSqs({ dataDir, visibilityTimeoutSeconds: 7 });
    try {
      const attrs = (
        await second.client.send(
          new GetQueueAttributesCommand({
            QueueUrl: second.ingestQueueUrl,
            AttributeNames: ['VisibilityTimeout', 'RedrivePolicy', 'ApproximateNumberOfMessages'],
          }),
        )
      ).Attributes!;
      expect(attrs.VisibilityTimeout).toBe('7');
      expect(JSON.parse(attrs.RedrivePolicy!).maxReceiveCount).toBe(5);
      expect(attrs.ApproximateNumberOfMessages).toBe('1');
    } finally {
      await second.close();
    }
  });
});
