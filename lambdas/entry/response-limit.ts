// Lambda returns at most 6 MB from a synchronous invocation (API Gateway's proxy included); a bigger
// answer fails in Lambda after the work was done and reaches the caller as an opaque 500. Locally
// nothing limits it, so the API answers a named error instead, which says how to ask for less.
import type { APIGatewayProxyResult } from 'aws-lambda';

/** Lambda's limit on a synchronous response: 6 MB (6,291,456 bytes) of serialized JSON. */
export const LAMBDA_RESPONSE_MAX_BYTES = 6 * 1024 * 1024;
/** Room for what Lambda and API Gateway add around the body. */
const MARGIN_BYTES = 16 * 1024;

type Result = Pick<APIGatewayProxyResult, 'statusCode' | 'body'> & Record<string, unknown>;

/** `result` as it is when Lambda can return it; otherwise a 413 `ResponseTooLarge` naming the size. */
export function fitLambdaResponse<T extends Result>(result: T, max = LAMBDA_RESPONSE_MAX_BYTES): T | Result {
  const bytes = Buffer.byteLength(JSON.stringify(result), 'utf8');
  if (bytes <= max - MARGIN_BYTES) return result;
  const mb = (n: number) => (n / 1024 / 1024).toFixed(1);
  return {
    statusCode: 413,
    headers: { 'content-type': 'application/json' },
    isBase64Encoded: false,
    body: JSON.stringify({
      error: 'ResponseTooLarge',
      message: `the answer is ${mb(bytes)} MB; AWS Lambda returns at most ${mb(max)} MB: ask for less (a shorter from/to window, a smaller limit); the daily compliance reports are in the report bucket`,
    }),
  };
}
