// `npx cdk synth` as the README runs it: offline (proxies point nowhere), no credentials, into a temp dir.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers.ts';

const outdir = mkdtempSync(join(tmpdir(), 'cdk-synth-'));
afterAll(() => rmSync(outdir, { recursive: true, force: true }));

it('synthesizes the stack with the CLI, offline, with no cdk-nag error', () => {
  const bin = join(REPO_ROOT, 'node_modules', '.bin');
  const dead = 'http://127.0.0.1:9';
  const { AWS_PROFILE, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, ...env } = process.env;
  const result = spawnSync(join(bin, 'cdk'), ['synth', '--quiet', '--output', outdir], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    timeout: 110_000,
    env: {
      ...env,
      PATH: `${bin}${delimiter}${env.PATH ?? ''}`,
      CDK_DISABLE_VERSION_CHECK: '1',
      CDK_DISABLE_CLI_TELEMETRY: 'true',
      HTTP_PROXY: dead,
      HTTPS_PROXY: dead,
      AWS_EC2_METADATA_DISABLED: 'true',
    },
  });
  const output = `${result.stdout}\n${result.stderr}`;
  expect(result.status, output).toBe(0);
  expect(output).not.toMatch(/AwsSolutions-[A-Z]+\d+/);
  const template = JSON.parse(readFileSync(join(outdir, 'XpuRebootCoordinator-dev.template.json'), 'utf8'));
  expect(Object.keys(template.Resources).length).toBeGreaterThan(50);
  expect(existsSync(join(outdir, 'manifest.json'))).toBe(true);
}, 120_000);
