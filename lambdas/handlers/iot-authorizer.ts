// AWS IoT Core custom authorizer of the push channel: MQTT user name = agent id, password = the agent's token,
// checked like the agent routes; the policy lets the agent listen on its own wake-up topic and nothing else.
import { hashToken, type InventoryIndex } from '../core/inventory.ts';
import { wakeTopic } from '../core/push-channel.ts';
import type { InventoryHint } from '../ports/index.ts';
import { authenticate, authorizeAgent } from './auth.ts';
import type { Logger } from './deps.ts';

export interface IotAuthorizerEvent {
  protocolData?: { mqtt?: { username?: string; password?: string; clientId?: string } };
}

export type IotAuthorizerResult =
  | { isAuthenticated: false }
  | {
      isAuthenticated: true;
      principalId: string;
      disconnectAfterInSeconds: number;
      refreshAfterInSeconds: number;
      policyDocuments: string[];
    };

/** The IoT policy of one agent: connect with a client id of its own, subscribe to and receive its wake-ups. */
export function agentPolicy(agent: string, region: string, account: string): Record<string, unknown> {
  const arn = (resource: string) => `arn:aws:iot:${region}:${account}:${resource}`;
  return {
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Action: 'iot:Connect', Resource: arn(`client/${agent}-*`) },
      { Effect: 'Allow', Action: 'iot:Subscribe', Resource: arn(`topicfilter/${wakeTopic(agent)}`) },
      { Effect: 'Allow', Action: 'iot:Receive', Resource: arn(`topic/${wakeTopic(agent)}`) },
    ],
  };
}

export function createIotAuthorizer(deps: {
  inventory: (hint?: InventoryHint) => Promise<InventoryIndex>;
  logger: Logger;
  region: string;
  account: () => string;
}) {
  return async (event: IotAuthorizerEvent): Promise<IotAuthorizerResult> => {
    const mqtt = event.protocolData?.mqtt;
    const agent = mqtt?.username?.split('?')[0] ?? '';
    // IoT hands the MQTT password over base64-encoded.
    const token = mqtt?.password ? Buffer.from(mqtt.password, 'base64').toString('utf8') : '';
    if (!agent || !token) return { isAuthenticated: false };
    // A store that cannot answer throws: IoT refuses the connection and the agent long-polls meanwhile.
    const index = await deps.inventory({ tokenHash: hashToken(token) });
    const who = authenticate(token, index);
    if (!who) return { isAuthenticated: false };
    try {
      authorizeAgent(agent, who, index);
    } catch {
      return { isAuthenticated: false };
    }
    return {
      isAuthenticated: true,
      principalId: agent.replace(/[^A-Za-z0-9]/g, '').slice(0, 128) || 'agent',
      // An inventory change (a token removed) takes effect within the hour.
      disconnectAfterInSeconds: 24 * 3600,
      refreshAfterInSeconds: 3600,
      policyDocuments: [JSON.stringify(agentPolicy(agent, deps.region, deps.account()))],
    };
  };
}
