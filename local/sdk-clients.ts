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

/** Client options for an embedded emulator at `endpoint`. */
export function localClientConfig(endpoint: string) {
  return {
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    signer: localSigner,
  };
}
