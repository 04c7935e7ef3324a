// What every local SDK client (DynamoDB, SQS, Step Functions) shares: fixed credentials, no SigV4 work.

/**
 * The embedded emulators check that a request carries an AWS4 `Authorization` header and `X-Amz-Date`
 * (dynalite), but never verify the signature. Signing costs the stack's one event loop ~8 % of its CPU
 * under a burst (HMAC key derivation and hashing per request, bench/README.md): locally the header is
 * stamped instead of computed. In AWS the clients sign as usual (lambdas/entry/runtime.ts).
 */
export const localSigner = {
  async sign<R extends { headers: Record<string, string> }>(request: R, opts?: { signingService?: string }): Promise<R> {
    const date = new Date().toISOString().replace(/[:-]|\.\d{3}/g, '');
    const scope = `local/${date.slice(0, 8)}/us-east-1/${opts?.signingService ?? 'local'}/aws4_request`;
    request.headers['x-amz-date'] = date;
    request.headers.authorization = `AWS4-HMAC-SHA256 Credential=${scope}, SignedHeaders=host;x-amz-date, Signature=local`;
    return request;
  },
};

/**
 * How long one request to an emulator may go without an answer. A stopped (not dead) emulator accepts
 * the connection and never answers: without a limit every request waited for it for ever, instead of
 * the SDK retrying and the API answering 503 `Unavailable` (docs/api.md). Well above the longest request
 * the stack makes (an SQS receive waits at most 5 s, local/ingest-poller.ts).
 */
export const LOCAL_REQUEST_TIMEOUT_MS = 10_000;

/** Client options for an embedded emulator at `endpoint`. */
export function localClientConfig(endpoint: string) {
  return {
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    signer: localSigner,
    requestHandler: { requestTimeout: LOCAL_REQUEST_TIMEOUT_MS, throwOnRequestTimeout: true },
  };
}

/**
 * The middleware stack is resolved (concatenated and sorted) on every send unless cached per command class.
 * For SQS and Step Functions only: the DynamoDB Document client refuses it. Nothing adds middleware to these
 * clients after their first call but the bench, which resets the cache.
 */
export const CACHE_MIDDLEWARE = { cacheMiddleware: true } as const;

/**
 * Middleware that only matters to AWS: the user agent (escaped and joined on every request), the Lambda
 * trace header and the SDK's logger hooks. An emulator ignores all three; each costs the stack's one
 * event loop per request (together with the middleware cache ~15 % of a warm call's client CPU, bench/README.md
 * "Round 2, second pass").
 */
const AWS_ONLY_MIDDLEWARE = ['getUserAgentMiddleware', 'recursionDetectionMiddleware', 'loggerMiddleware'];

/** A client for an embedded emulator, without the middleware only AWS needs. */
export function leanLocalClient<C extends { middlewareStack: { remove(name: string): boolean } }>(client: C): C {
  for (const name of AWS_ONLY_MIDDLEWARE) client.middlewareStack.remove(name);
  return client;
}
