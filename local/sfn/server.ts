// The local Step Functions engine over HTTP, speaking the AWS JSON 1.0 protocol that @aws-sdk/client-sfn uses.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LocalStepFunctions } from './engine.ts';
import { CLIENT_ERROR_NAMES } from './errors.ts';

export interface SfnServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

const CONTENT_TYPE = 'application/x-amz-json-1.0';
const TARGET_PREFIX = 'AWSStepFunctions.';
// Step Functions caps inputs and outputs at 256 KiB; a definition can be 1 MiB. Leave room for both.
const MAX_BODY_BYTES = 4 * 1024 * 1024;

type Body = Record<string, unknown>;
type Operation = (engine: LocalStepFunctions, body: Body) => unknown;

const str = (v: unknown) => (typeof v === 'string' ? v : (undefined as unknown as string));
const num = (v: unknown) => (typeof v === 'number' ? v : undefined);
const bool = (v: unknown) => (typeof v === 'boolean' ? v : undefined);

const OPERATIONS: Record<string, Operation> = {
  CreateStateMachine: (e, b) => e.createStateMachine({ name: str(b.name), definition: str(b.definition), roleArn: str(b.roleArn) }),
  UpdateStateMachine: (e, b) =>
    e.updateStateMachine({ stateMachineArn: str(b.stateMachineArn), definition: str(b.definition), roleArn: str(b.roleArn) }),
  DescribeStateMachine: (e, b) => e.describeStateMachine({ stateMachineArn: str(b.stateMachineArn) }),
  ListStateMachines: (e, b) => e.listStateMachines({ maxResults: num(b.maxResults), nextToken: str(b.nextToken) }),
  StartExecution: (e, b) => e.startExecution({ stateMachineArn: str(b.stateMachineArn), name: str(b.name), input: str(b.input) }),
  DescribeExecution: (e, b) => e.describeExecution({ executionArn: str(b.executionArn) }),
  StopExecution: (e, b) => e.stopExecution({ executionArn: str(b.executionArn), error: str(b.error), cause: str(b.cause) }),
  ListExecutions: (e, b) =>
    e.listExecutions({
      stateMachineArn: str(b.stateMachineArn),
      statusFilter: str(b.statusFilter) as never,
      maxResults: num(b.maxResults),
      nextToken: str(b.nextToken),
    }),
  GetExecutionHistory: (e, b) =>
    e.getExecutionHistory({
      executionArn: str(b.executionArn),
      reverseOrder: bool(b.reverseOrder),
      maxResults: num(b.maxResults),
      nextToken: str(b.nextToken),
    }),
  SendTaskSuccess: (e, b) => e.sendTaskSuccess({ taskToken: str(b.taskToken), output: str(b.output) }),
  SendTaskFailure: (e, b) => e.sendTaskFailure({ taskToken: str(b.taskToken), error: str(b.error), cause: str(b.cause) }),
  SendTaskHeartbeat: (e, b) => e.sendTaskHeartbeat({ taskToken: str(b.taskToken) }),
};

/** The JSON protocol carries timestamps as epoch seconds. */
function toWire(value: unknown): unknown {
  if (value instanceof Date) return value.getTime() / 1000;
  if (Array.isArray(value)) return value.map(toWire);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = toWire(v);
    return out;
  }
  return value;
}

/** A request of the JSON protocol, answered: what the HTTP server and the in-process transport share. */
interface Answer {
  status: number;
  body: string;
  /** The error's name, for `x-amzn-errortype`. */
  type?: string;
}

function error(status: number, type: string, message: string): Answer {
  return { status, type, body: JSON.stringify({ __type: type, message }) };
}

/** `target` is the `X-Amz-Target` header; `text` the request body. */
async function answer(engine: LocalStepFunctions, target: string, text: string): Promise<Answer> {
  try {
    const op = target.startsWith(TARGET_PREFIX) ? OPERATIONS[target.slice(TARGET_PREFIX.length)] : undefined;
    if (!op) return error(400, 'UnknownOperationException', `unsupported operation '${target}'`);
    let body: Body;
    try {
      body = text ? (JSON.parse(text) as Body) : {};
    } catch {
      return error(400, 'SerializationException', 'request body is not JSON');
    }
    const result = await op(engine, body ?? {});
    return { status: 200, body: JSON.stringify(toWire(result ?? {})) };
  } catch (err) {
    const name = err instanceof Error ? err.name : 'InternalFailure';
    const message = err instanceof Error ? err.message : String(err);
    if (CLIENT_ERROR_NAMES.has(name)) return error(400, name, message);
    return error(500, 'InternalFailure', `${name}: ${message}`);
  }
}

function headersOf(a: Answer): Record<string, string> {
  const headers: Record<string, string> = { 'content-type': CONTENT_TYPE, 'content-length': String(Buffer.byteLength(a.body)) };
  if (a.type) headers['x-amzn-errortype'] = a.type;
  return headers;
}

function send(res: ServerResponse, a: Answer): void {
  res.writeHead(a.status, headersOf(a));
  res.end(a.body);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(Object.assign(new Error('request body too large'), { name: 'ValidationException' }));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export async function startSfnServer(engine: LocalStepFunctions, opts: { host?: string; port?: number } = {}): Promise<SfnServer> {
  const host = opts.host ?? '127.0.0.1';
  const server = createServer(async (req, res) => {
    if (req.method !== 'POST') return send(res, error(400, 'UnknownOperationException', 'use POST /'));
    let text: string;
    try {
      text = await readBody(req);
    } catch (err) {
      return send(res, error(400, 'ValidationException', (err as Error).message));
    }
    send(res, await answer(engine, String(req.headers['x-amz-target'] ?? ''), text));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        // SDK clients keep connections alive; close them or server.close() waits for their idle timeout.
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * A request handler for @aws-sdk/client-sfn that answers in this process, for the stack's own client: the
 * engine runs in the stack's event loop, so StartExecution and SendTask* over loopback HTTP made the one
 * loop both client and server of every call (socket writes, HTTP parsing on both sides, an event-loop turn
 * each way; bench/README.md "Round 2, fourth pass"). The client is the same SDK client as in AWS, with
 * its serialisation, middleware and error mapping; only the transport under it differs, as the endpoint
 * does. The HTTP server stays for everything outside the stack (CLI, tests, `aws stepfunctions`).
 */
export function inProcessSfnHandler(engine: LocalStepFunctions) {
  return {
    async handle(request: { headers: Record<string, string>; body?: unknown }) {
      const target = request.headers['x-amz-target'] ?? request.headers['X-Amz-Target'] ?? '';
      const body = request.body;
      // A view, not Buffer.from(body): the SDK's body adapter answers valueOf() with a warning.
      const text =
        typeof body === 'string'
          ? body
          : body instanceof Uint8Array
            ? Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8')
            : '';
      const a = await answer(engine, target, text);
      return { response: { statusCode: a.status, reason: undefined, headers: headersOf(a), body: Buffer.from(a.body) } };
    },
    updateHttpClientConfig() {},
    httpHandlerConfigs: () => ({}),
    destroy() {},
  };
}
