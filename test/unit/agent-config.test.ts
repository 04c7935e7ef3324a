// Unit tests of the agent's configuration: precedence flag > env > file > default, file formats, and clear errors.
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, resolveAgentConfig } from '../../agent/config.ts';

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'agent-config-'));
  mkdirSync(join(dir, 'hooks'));
  return dir;
}
const base = (dir: string) => ({ server: 'http://127.0.0.1:8080', agent: 'node-a', token: 't', hooks: join(dir, 'hooks') });

describe('agent configuration', () => {
  it('fills defaults and freezes the result', async () => {
    const dir = setup();
    const config = await resolveAgentConfig({ flags: base(dir), env: { HOME: '/home/op' } });
    expect(config).toMatchObject({
      wait: 20,
      heartbeatSeconds: 5,
      maxOutputBytes: 65_536,
      once: false,
      state: '/home/op/.local/state/rebootctl',
    });
    expect(Object.isFrozen(config)).toBe(true);
    const xdg = await resolveAgentConfig({ flags: base(dir), env: { XDG_STATE_HOME: '/var/state' } });
    expect(xdg.state).toBe('/var/state/rebootctl');
  });

  it('takes a flag over env, env over the config file, the file over defaults', async () => {
    const dir = setup();
    const file = join(dir, 'agent.yaml');
    writeFileSync(
      file,
      `server: https://file:1\nagent: node-a\ntoken: from-file\nhooks: hooks\nwait: 5\nheartbeatSeconds: 2\nmaxOutputBytes: 4096\n`,
    );
    const config = await resolveAgentConfig({
      flags: { config: file, wait: '7' },
      env: { REBOOT_AGENT_WAIT: '9', REBOOT_AGENT_HEARTBEAT_SECONDS: '3', REBOOT_AGENT_TOKEN: 'from-env' },
    });
    expect(config.wait).toBe(7); // flag
    expect(config.heartbeatSeconds).toBe(3); // env
    expect(config.token).toBe('from-env'); // env over file
    expect(config.maxOutputBytes).toBe(4096); // file
    expect(config.hooks).toBe(join(dir, 'hooks')); // relative to the file
    expect(config.server).toBe('https://file:1');
  });

  it('reads JSON config files, the config path from env, and the token from a file', async () => {
    const dir = setup();
    writeFileSync(join(dir, 'token'), 'secret-token\n');
    writeFileSync(join(dir, 'agent.json'), JSON.stringify({ ...base(dir), token: undefined, tokenFile: 'token', once: true }));
    const config = await resolveAgentConfig({ env: { REBOOT_AGENT_CONFIG: join(dir, 'agent.json') } });
    expect(config.token).toBe('secret-token');
    expect(config.once).toBe(true);
    expect(config.wait).toBe(0); // --once polls without waiting unless told otherwise
  });

  it('names the setting and its source when a value is bad', async () => {
    const dir = setup();
    const err = await resolveAgentConfig({ flags: { ...base(dir), wait: '45' }, env: { REBOOT_AGENT_MAX_OUTPUT_BYTES: 'lots' } }).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toMatch(/wait \(--wait\):.*30/);
    expect(err.message).toMatch(/maxOutputBytes \(env REBOOT_AGENT_MAX_OUTPUT_BYTES\)/);
  });

  it('rejects unknown config-file keys with the file and line, missing settings, and a hooks path that is not a directory', async () => {
    const dir = setup();
    writeFileSync(join(dir, 'a.yaml'), 'server: http://x\nwiat: 5\n');
    await expect(resolveAgentConfig({ flags: { config: join(dir, 'a.yaml') }, env: {} })).rejects.toThrow(/a\.yaml:2: unknown key 'wiat'/);
    await expect(resolveAgentConfig({ flags: { server: 'http://x' }, env: {} })).rejects.toThrow(/missing: --agent .*--token .*--hooks/);
    await expect(resolveAgentConfig({ flags: { ...base(dir), hooks: join(dir, 'nope') }, env: {} })).rejects.toThrow(
      /nope is not a directory/,
    );
    await expect(resolveAgentConfig({ flags: { ...base(dir), agent: '../etc' }, env: {} })).rejects.toThrow(/agent \(--agent\)/);
    await expect(resolveAgentConfig({ flags: { ...base(dir), server: 'ftp://x' }, env: {} })).rejects.toThrow(/http/);
  });
});
