// The local push channel: an embedded MQTT broker (aedes) on 127.0.0.1 carrying wake-ups to agents, one topic per agent.
// AWS IoT Core plays this part in AWS (same topics, same token check in its custom authorizer).
import { createServer, type Server } from 'node:net';
import type { InventoryIndex } from '../lambdas/core/inventory.ts';
import type { Logger } from '../lambdas/handlers/deps.ts';
import { authenticate, authorizeAgent } from '../lambdas/handlers/auth.ts';
import type { CommandSignal } from '../lambdas/ports/index.ts';
import { wakeTopic } from '../lambdas/core/push-channel.ts';

export interface MqttBroker {
  url: string;
  port: number;
  /** Publishes a wake-up on the agent's topic (fire and forget: the agent also fetches now and then). */
  wake(agent: string): void;
  close(): Promise<void>;
}

export interface MqttBrokerOptions {
  host: string;
  /** 0: a free port. */
  port: number;
  inventory: () => Promise<InventoryIndex>;
  operatorTokenHash?: string;
  logger: Logger;
}

/** CONNACK return codes: 4 bad user name or password, 5 not authorized. */
class AuthFailed extends Error {
  override readonly name = 'AuthFailed';
  readonly returnCode: number;
  constructor(returnCode: number) {
    super(returnCode === 4 ? 'bad user name or password' : 'not authorized');
    this.returnCode = returnCode;
  }
}

export async function startMqttBroker(opts: MqttBrokerOptions): Promise<MqttBroker> {
  const { Aedes } = await import('aedes');
  const broker = await Aedes.createBroker({
    // user name = agent id, password = the agent's token: the same check as the agent routes.
    authenticate: (client, username, password, done) => {
      void (async () => {
        const agent = username ?? '';
        const index = await opts.inventory();
        const who = authenticate(password?.toString('utf8'), index, opts.operatorTokenHash);
        if (!who) throw new AuthFailed(4);
        authorizeAgent(agent, who, index);
        (client as unknown as { agentId: string }).agentId = agent;
        done(null, true);
      })().catch((err: Error) => done((err instanceof AuthFailed ? err : new AuthFailed(5)) as never, false));
    },
    // An agent may listen on its own topic only, and publishes nothing: wake-ups come from the coordinator.
    authorizeSubscribe: (client, sub, done) => {
      // A foreign topic gets a refused SUBACK (0x80); the connection stays.
      const agent = (client as unknown as { agentId?: string }).agentId;
      done(null, agent && sub.topic === wakeTopic(agent) ? sub : null);
    },
    authorizePublish: (client, packet, done) => done(client ? new Error(`clients may not publish (${packet.topic})`) : null),
  });
  const server: Server = createServer(broker.handle as never);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  const url = `mqtt://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}`;
  let closed = false;
  return {
    url,
    port,
    wake(agent) {
      if (closed) return;
      const payload = Buffer.from(JSON.stringify({ agent, at: new Date().toISOString() }));
      broker.publish({ cmd: 'publish', topic: wakeTopic(agent), payload, qos: 1, retain: false, dup: false } as never, (err) => {
        if (err) opts.logger.warn('mqtt wake-up not published', { agent, error: String(err) });
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** The command signal of the API and the workflows, also publishing each notification as an MQTT wake-up. */
export function withWakeups(signal: CommandSignal, broker: Pick<MqttBroker, 'wake'>): CommandSignal {
  return {
    notify(agent, commands) {
      signal.notify(agent, commands);
      broker.wake(agent);
    },
    wait: (agent, ms, abort) => signal.wait(agent, ms, abort),
    // A claimed poll is answered with the commands: no wake-up needed for those.
    ...(signal.claim ? { claim: (agent: string) => signal.claim!(agent) } : {}),
  };
}
