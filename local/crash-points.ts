// Tests only (STACK_TEST_CRASH_POINTS=1): kill -9 at a chosen point inside one HTTP request.
//
// A request that carries `x-test-crash-after-writes: N` kills the stack (SIGKILL, as kill -9) right after the
// N-th write it caused has been acknowledged: a DynamoDB write, an SQS send or delete, a Step Functions start
// or SendTask*. Writes are attributed to the request through AsyncLocalStorage, so work the request started
// (an execution's first steps) counts too. Between two writes nothing durable changes, so N = 1, 2, … reaches
// every half-done state a kill at an arbitrary moment can leave (test/integration/restart-audit-s9.test.ts).
// A request that did fewer writes than N answers with `x-test-writes: <how many>` and nothing is killed.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { MiddlewareStack } from '@smithy/types';

export const CRASH_AFTER_WRITES_HEADER = 'x-test-crash-after-writes';
export const WRITES_DONE_HEADER = 'x-test-writes';

/** Calls that change nothing durable; every other command counts as a write. */
const READ_ONLY = /^(Get|BatchGet|Query|Scan|Describe|List|Receive)/;

interface Budget {
  left: number;
  done: number;
}

// biome-ignore lint/suspicious/noExplicitAny: any SDK v3 client (their input and output types differ)
type MiddlewareClient = { middlewareStack: MiddlewareStack<any, any> };

export class CrashPoints {
  readonly #scope = new AsyncLocalStorage<Budget>();

  /** Runs one request; armed when it carries the header. */
  async run(req: Request, serve: () => Promise<Response>): Promise<Response> {
    const n = Number(req.headers.get(CRASH_AFTER_WRITES_HEADER) ?? 0);
    if (!Number.isInteger(n) || n < 1) return serve();
    const budget: Budget = { left: n, done: 0 };
    const res = await this.#scope.run(budget, serve);
    // Hono's responses may have immutable headers: copy them.
    const headers = new Headers(res.headers);
    headers.set(WRITES_DONE_HEADER, String(budget.done));
    return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
  }

  /** Counts the client's writes against the request that caused them. */
  watch(client: MiddlewareClient, service: string): void {
    client.middlewareStack.add(
      (next, ctx: { commandName?: string }) => async (args) => {
        const out = await next(args);
        const budget = this.#scope.getStore();
        const command = String(ctx.commandName ?? '').replace(/Command$/, '');
        if (budget && budget.left > 0 && !READ_ONLY.test(command)) {
          budget.done++;
          if (--budget.left === 0) {
            console.log(`test-hook: the stack kills itself after write ${budget.done} (${service} ${command})`);
            process.kill(process.pid, 'SIGKILL');
          }
        }
        return out;
      },
      { step: 'initialize', name: 'testCrashPoints' },
    );
  }
}
