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

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': CONTENT_TYPE, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, type: string, message: string): void {
  res.setHeader('x-amzn-errortype', type);
  send(res, status, { __type: type, message });
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
    try {
      if (req.method !== 'POST') return sendError(res, 400, 'UnknownOperationException', 'use POST /');
      const target = String(req.headers['x-amz-target'] ?? '');
      const op = target.startsWith(TARGET_PREFIX) ? OPERATIONS[target.slice(TARGET_PREFIX.length)] : undefined;
      if (!op) return sendError(res, 400, 'UnknownOperationException', `unsupported operation '${target}'`);
      const text = await readBody(req);
      let body: Body;
      try {
        body = text ? (JSON.parse(text) as Body) : {};
      } catch {
        return sendError(res, 400, 'SerializationException', 'request body is not JSON');
      }
      const result = await op(engine, body ?? {});
      send(res, 200, toWire(result ?? {}));
    } catch (err) {
      const name = err instanceof Error ? err.name : 'InternalFailure';
      const message = err instanceof Error ? err.message : String(err);
      if (CLIENT_ERROR_NAMES.has(name)) sendError(res, 400, name, message);
      else sendError(res, 500, 'InternalFailure', `${name}: ${message}`);
    }
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
