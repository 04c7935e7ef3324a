// The push channel's AWS side without AWS: the IoT custom authorizer's answers, and the signed publish request.
import { describe, expect, it } from 'vitest';
import { signedPublish } from '../../lambdas/adapters/iot-wake.ts';
import { hashToken, InventoryIndex, parseInventory } from '../../lambdas/core/inventory.ts';
import { silentLogger } from '../../lambdas/handlers/deps.ts';
import { createIotAuthorizer } from '../../lambdas/handlers/iot-authorizer.ts';

const index = new InventoryIndex(
  parseInventory(
    'nodes:\n  - id: node-a\n    agentToken: agent-token-node-a\n    xpus: [{ id: dpu0 }]\n  - id: node-b\n    agentToken: agent-token-node-b\n',
  ),
);
const b64 = (s: string) => Buffer.from(s).toString('base64');
const authorize = createIotAuthorizer({
  inventory: async () => index,
  logger: silentLogger,
  region: 'eu-west-1',
  account: () => '123456789012',
});

describe('IoT custom authorizer', () => {
  it('lets an agent connect and listen on its own wake-up topic only', async () => {
    const res = await authorize({
      protocolData: { mqtt: { username: 'node-a.dpu0', password: b64('agent-token-node-a'), clientId: 'node-a.dpu0-1' } },
    });
    expect(res).toMatchObject({ isAuthenticated: true, principalId: 'nodeadpu0' });
    const policy = JSON.parse((res as { policyDocuments: string[] }).policyDocuments[0]);
    expect(policy.Statement).toEqual([
      { Effect: 'Allow', Action: 'iot:Connect', Resource: 'arn:aws:iot:eu-west-1:123456789012:client/node-a.dpu0-*' },
      {
        Effect: 'Allow',
        Action: 'iot:Subscribe',
        Resource: 'arn:aws:iot:eu-west-1:123456789012:topicfilter/xpu-reboot/agents/node-a.dpu0/wake',
      },
      { Effect: 'Allow', Action: 'iot:Receive', Resource: 'arn:aws:iot:eu-west-1:123456789012:topic/xpu-reboot/agents/node-a.dpu0/wake' },
    ]);
  });

  it("refuses a wrong token, another node's agent id, and no credentials", async () => {
    expect(await authorize({ protocolData: { mqtt: { username: 'node-a', password: b64('nope-nope-nope') } } })).toEqual({
      isAuthenticated: false,
    });
    expect(await authorize({ protocolData: { mqtt: { username: 'node-b', password: b64('agent-token-node-a') } } })).toEqual({
      isAuthenticated: false,
    });
    expect(await authorize({})).toEqual({ isAuthenticated: false });
  });

  it('fails (IoT refuses the connection; the agent long-polls) when the inventory cannot be read', async () => {
    const failing = createIotAuthorizer({
      inventory: async () => Promise.reject(Object.assign(new Error('slow down'), { name: 'ThrottlingException' })),
      logger: silentLogger,
      region: 'r',
      account: () => 'a',
    });
    await expect(failing({ protocolData: { mqtt: { username: 'node-a', password: b64('agent-token-node-a') } } })).rejects.toThrow(
      'slow down',
    );
    expect(hashToken('x')).toHaveLength(64);
  });
});

describe('signed IoT publish', () => {
  it('posts to the topic (slashes encoded) with a SigV4 authorization for iotdevicegateway', () => {
    const req = signedPublish({
      endpoint: 'abc-ats.iot.eu-west-1.amazonaws.com',
      region: 'eu-west-1',
      topic: 'xpu-reboot/agents/node-a.dpu0/wake',
      payload: '{"agent":"node-a.dpu0"}',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret', sessionToken: 'session' },
      now: new Date('2026-12-06T10:00:00.000Z'),
    });
    expect(req.url).toBe('https://abc-ats.iot.eu-west-1.amazonaws.com/topics/xpu-reboot%2Fagents%2Fnode-a.dpu0%2Fwake?qos=1');
    expect(req.headers['x-amz-date']).toBe('20261206T100000Z');
    expect(req.headers['x-amz-security-token']).toBe('session');
    expect(req.headers.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/20261206\/eu-west-1\/iotdevicegateway\/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature=[0-9a-f]{64}$/,
    );
  });
});
