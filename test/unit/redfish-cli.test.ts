// `rebootctl bmc subscribe|check` run as the real CLI against a fake Redfish EventService started by the test.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeBmc, type FakeBmc } from '../fixtures/redfish/fake-bmc.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const NODES = fileURLToPath(new URL('../fixtures/redfish/nodes.yaml', import.meta.url));
const SERVER = 'https://coordinator.example.com/prod/';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function rebootctl(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      'node',
      ['cli/rebootctl.js', ...args],
      {
        cwd: ROOT,
        env: {
          ...process.env,
          PATH: `${ROOT}node_modules/.bin:${process.env.PATH}`,
          NODES_FILE: NODES,
          BMC_PASSWORD: '0penBmc',
          REDFISH_MAPPING_FILE: '',
          ...env,
        },
        timeout: 30_000,
      },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 99) : 0, stdout, stderr }),
    );
  });
}

function common(bmc: FakeBmc, extra: string[] = []): string[] {
  return ['--bmc', bmc.url, '--user', 'root', '--password-env', 'BMC_PASSWORD', '--node', 'node-a', '--server', SERVER, ...extra];
}

let bmc: FakeBmc | undefined;
afterEach(async () => {
  await bmc?.close();
  bmc = undefined;
});

describe('rebootctl bmc subscribe', () => {
  it('creates the EventDestination with the bearer token, the node as Context and registry filters; 204 + Location is success', async () => {
    bmc = await startFakeBmc();
    const run = await rebootctl(['bmc', 'subscribe', ...common(bmc)]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain(`${bmc.url}/redfish/v1/EventService/Subscriptions/1`);
    const post = bmc.requests.find((r) => r.method === 'POST');
    expect(post?.authorization).toBe(`Basic ${Buffer.from('root:0penBmc').toString('base64')}`);
    expect(post?.body).toMatchObject({
      Destination: 'https://coordinator.example.com/prod/v1/events/redfish',
      Context: 'node-a',
      Protocol: 'Redfish',
      SubscriptionType: 'RedfishEvent',
      EventFormatType: 'Event',
      HttpHeaders: [{ Authorization: 'Bearer bmc-token-node-a' }],
      EventTypes: expect.arrayContaining(['Alert']),
      RegistryPrefixes: expect.arrayContaining(['XpuReboot', 'ResourceEvent', 'Platform', 'OpenBMC', 'Power']),
    });
    expect(bmc.subscriptions.size).toBe(1);
  });

  it('with --token-in-url puts the token in the Destination query and never prints it', async () => {
    bmc = await startFakeBmc();
    const run = await rebootctl(['bmc', 'subscribe', ...common(bmc, ['--token-in-url', '--xpu', 'dpu0'])]);
    expect(run.code, run.stderr).toBe(0);
    expect([...bmc.subscriptions.values()][0]).toMatchObject({
      Destination: 'https://coordinator.example.com/prod/v1/events/redfish?access_token=bmc-token-node-a',
      Context: 'node-a.dpu0',
    });
    expect(run.stdout + run.stderr).not.toContain('bmc-token-node-a');
    expect(run.stdout).toContain('access_token=***');
  });

  it('retries once without filters when the BMC rejects a filter property, and says so', async () => {
    bmc = await startFakeBmc({ rejectProperties: ['RegistryPrefixes'] });
    const run = await rebootctl(['bmc', 'subscribe', ...common(bmc)]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/rejected RegistryPrefixes .*without filters/);
    const posts = bmc.requests.filter((r) => r.method === 'POST');
    expect(posts).toHaveLength(2);
    expect(posts[1].body).not.toHaveProperty('RegistryPrefixes');
    expect(posts[1].body).not.toHaveProperty('EventTypes');
    expect(posts[1].body).toMatchObject({ Context: 'node-a', HttpHeaders: [{ Authorization: 'Bearer bmc-token-node-a' }] });
    expect(bmc.subscriptions.size).toBe(1);
  });

  it('does not duplicate an existing subscription, and --replace recreates it', async () => {
    bmc = await startFakeBmc();
    expect((await rebootctl(['bmc', 'subscribe', ...common(bmc)])).code).toBe(0);
    const again = await rebootctl(['bmc', 'subscribe', ...common(bmc)]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/already subscribed/);
    expect(bmc.subscriptions.size).toBe(1);
    const replaced = await rebootctl(['bmc', 'subscribe', ...common(bmc, ['--replace'])]);
    expect(replaced.code, replaced.stderr).toBe(0);
    expect([...bmc.subscriptions.keys()]).toEqual(['2']);
  });

  it('fails with BmcAuthFailed on a wrong password, and before any request when the password variable is unset', async () => {
    bmc = await startFakeBmc();
    const wrong = await rebootctl(['bmc', 'subscribe', ...common(bmc)], { BMC_PASSWORD: 'nope' });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/BmcAuthFailed/);
    const unset = await rebootctl(['bmc', 'subscribe', ...common(bmc)], { BMC_PASSWORD: undefined });
    expect(unset.code).toBe(2);
    expect(unset.stderr).toMatch(/BMC_PASSWORD .*not set/);
    expect(bmc.subscriptions.size).toBe(0);
  });

  it('refuses a Context naming another node, an unknown node, and a hashed token without --token-env', async () => {
    bmc = await startFakeBmc();
    const ctx = await rebootctl(['bmc', 'subscribe', ...common(bmc, ['--context', 'node-b'])]);
    expect(ctx.code).toBe(2);
    expect(ctx.stderr).toMatch(/names node 'node-b'/);
    const unknown = await rebootctl(['bmc', 'subscribe', ...common(bmc).map((a) => (a === 'node-a' ? 'node-z' : a))]);
    expect(unknown.stderr).toMatch(/node 'node-z' is not in/);
    const hashedArgs = common(bmc).map((a) => (a === 'node-a' ? 'node-h' : a));
    const hashed = await rebootctl(['bmc', 'subscribe', ...hashedArgs]);
    expect(hashed.stderr).toMatch(/--token-env/);
    const withToken = await rebootctl(['bmc', 'subscribe', ...hashedArgs, '--token-env', 'H_TOKEN'], { H_TOKEN: 'hashed-bmc-token-h' });
    expect(withToken.code, withToken.stderr).toBe(0);
    expect([...bmc.subscriptions.values()][0]).toMatchObject({ Context: 'node-h', HttpHeaders: [] });
    expect(bmc.requests.find((r) => r.method === 'POST')?.body).toMatchObject({
      HttpHeaders: [{ Authorization: 'Bearer hashed-bmc-token-h' }],
    });
  });
});

describe('rebootctl bmc check', () => {
  it('exits 0 while our subscription exists and 1 with SubscriptionMissing once it is gone', async () => {
    bmc = await startFakeBmc();
    expect((await rebootctl(['bmc', 'subscribe', ...common(bmc, ['--token-in-url'])])).code).toBe(0);
    const present = await rebootctl(['bmc', 'check', ...common(bmc, ['--token-in-url'])]);
    expect(present.code, present.stderr).toBe(0);
    expect(present.stdout).toMatch(/subscribed: .*Subscriptions\/1/);

    // Another client's subscription, and ours under a different Context, do not count.
    bmc.subscriptions.set('9', { Destination: 'https://elsewhere.example.com/hook', Context: 'node-a' });
    const otherCtx = await rebootctl(['bmc', 'check', ...common(bmc, ['--xpu', 'dpu0'])]);
    expect(otherCtx.code).toBe(1);

    bmc.subscriptions.delete('1');
    const gone = await rebootctl(['bmc', 'check', ...common(bmc)]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/SubscriptionMissing: none of the 1 subscription/);
  });

  it('exits 2 when it cannot ask: bad credentials or an unreachable BMC', async () => {
    bmc = await startFakeBmc();
    const auth = await rebootctl(['bmc', 'check', ...common(bmc)], { BMC_PASSWORD: 'nope' });
    expect(auth.code).toBe(2);
    expect(auth.stderr).toMatch(/BmcAuthFailed/);
    const url = bmc.url;
    await bmc.close();
    bmc = undefined;
    const down = await rebootctl([
      'bmc',
      'check',
      '--bmc',
      url,
      '--user',
      'root',
      '--password-env',
      'BMC_PASSWORD',
      '--node',
      'node-a',
      '--server',
      SERVER,
      '--timeout',
      '3',
    ]);
    expect(down.code).toBe(2);
    expect(down.stderr).toMatch(/BmcUnreachable/);
  });
});
