// Lambda entry: EventBridge Scheduler runs the compliance report daily and writes JSON + HTML to S3.
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { writeScheduledReport } from '../handlers/report-job.ts';
import { deps, env, powertoolsMetrics } from './runtime.ts';

const s3 = new S3Client({});

export const handler = async () => {
  if (!env.REPORT_BUCKET) throw new Error('REPORT_BUCKET is not set');
  try {
    const res = await writeScheduledReport(
      deps,
      {
        put: async (name, contentType, body) => {
          await s3.send(new PutObjectCommand({ Bucket: env.REPORT_BUCKET, Key: `reports/${name}`, Body: body, ContentType: contentType }));
        },
      },
      env.REPORT_WINDOW_SECONDS,
    );
    deps.logger.info('compliance report written', res);
    return res;
  } finally {
    powertoolsMetrics.publishStoredMetrics();
  }
};
