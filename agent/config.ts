// The agent's configuration: flags > env > config file > defaults, validated once with zod and frozen.
import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import { AGENT_OPTIONS } from './options.ts';

/** A bad or missing setting; the message names the setting and where its value came from. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const num = (min: number, max: number) => z.coerce.number().min(min).max(max);
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

export const AgentConfigSchema = z
  .strictObject({
    server: z
      .string()
      .trim()
      .pipe(z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }))
      .transform((u) => u.replace(/\/+$/, ''))
      // A bearer token over plain HTTP is readable by anyone on the path.
      .refine(
        (u) => !u.startsWith('http:') || isLoopback(new URL(u).hostname),
        'http:// is allowed only to a loopback address (127.0.0.1, ::1, localhost); use https://',
      ),
    // It names a directory too: no '/', and no leading '.', so never '..'.
    agent: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'must look like node-a or node-a.dpu0 (letters, digits, . _ : -)'),
    // It goes into an Authorization header as is: a second line or a space in a token file would
    // otherwise fail every request as if the server were unreachable.
    token: z
      .string()
      .trim()
      .min(1, 'must not be empty')
      .regex(/^[\x21-\x7e]+$/, 'must be one word of printable ASCII (does the token file hold more than the token?)'),
    /** Where the token came from, when a file: the lean daemon reads it again there, and hooks get its path. */
    tokenFile: z.string().min(1).optional(),
    caFile: z.string().min(1).optional(),
    clientCert: z.string().min(1).optional(),
    clientKey: z.string().min(1).optional(),
    hooks: z.string().min(1),
    state: z.string().min(1),
    wait: int(0, 30).default(20),
    transport: z.enum(['auto', 'mqtt', 'poll']).default('auto'),
    mqttUrl: z
      .string()
      .trim()
      .regex(/^(mqtts?|wss?):\/\//, 'must be an mqtt://, mqtts://, ws:// or wss:// URL')
      .optional(),
    once: z.union([z.boolean(), z.stringbool()]).default(false),
    heartbeatSeconds: num(0.05, 300).default(5),
    maxOutputBytes: int(1024, 131_072).default(65_536),
    killGraceSeconds: num(0, 300).default(5),
    stopGraceSeconds: num(0, 3600).default(30),
    deliverTimeoutSeconds: num(0, 3600).default(10),
    requestTimeoutSeconds: num(0.5, 300).default(15),
    backoffInitialSeconds: num(0.01, 60).default(0.5),
    backoffMaxSeconds: num(0.05, 3600).default(30),
    journalMaxEntries: int(100, 10_000_000).default(10_000),
    journalMaxAgeDays: num(1, 3650).default(30),
    logLevel: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
  })
  .refine((c) => (c.clientCert === undefined) === (c.clientKey === undefined), {
    path: ['clientCert'],
    message: 'give both --client-cert and --client-key, or neither',
  })
  .refine((c) => c.backoffMaxSeconds >= c.backoffInitialSeconds, {
    path: ['backoffMaxSeconds'],
    message: 'must be at least backoffInitialSeconds',
  });

/** The validated, frozen configuration runAgent takes (JSON-serialisable: the CLI hands it to the lean daemon). */
export type AgentConfig = Readonly<z.output<typeof AgentConfigSchema>>;

export interface ConfigSources {
  /** Parsed CLI flags by camelCase key (commander's opts()); undefined means not given. */
  flags?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
  /** Relative paths from flags and env resolve against it (default process.cwd()). */
  cwd?: string;
}

interface Picked {
  value: unknown;
  source: string;
  rank: number;
  /** Where a relative path in this value is relative to. */
  base: string;
}

const FILE_KEYS = AGENT_OPTIONS.map((o) => o.key).filter((k) => k !== 'config');

export async function resolveAgentConfig(sources: ConfigSources = {}): Promise<AgentConfig> {
  const flags = sources.flags ?? {};
  const env = sources.env ?? process.env;
  const cwd = sources.cwd ?? process.cwd();
  const envOf = (name: string) => (env[name] !== undefined && env[name] !== '' ? env[name] : undefined);

  const configPath = (flags.config as string | undefined) ?? envOf('REBOOT_AGENT_CONFIG');
  const file = configPath ? await readConfigFile(resolve(cwd, configPath)) : null;

  const picked = new Map<string, Picked>();
  for (const opt of AGENT_OPTIONS) {
    if (opt.key === 'config') continue;
    const flag = flags[opt.key];
    const envValue = envOf(opt.env);
    if (flag !== undefined) picked.set(opt.key, { value: flag, source: opt.flag.split(' ')[0], rank: 3, base: cwd });
    else if (envValue !== undefined) picked.set(opt.key, { value: envValue, source: `env ${opt.env}`, rank: 2, base: cwd });
    else if (file && file.values[opt.key] !== undefined) {
      picked.set(opt.key, { value: file.values[opt.key], source: `'${opt.key}' in ${file.path}`, rank: 1, base: dirname(file.path) });
    }
  }

  // The token and the token file are one setting: the higher-precedence source wins.
  const token = picked.get('token');
  const tokenFile = picked.get('tokenFile');
  if (token && tokenFile && token.rank === tokenFile.rank) {
    throw new ConfigError(`give either the token or the token file, not both (${token.source} and ${tokenFile.source})`);
  }
  if (tokenFile && (!token || tokenFile.rank > token.rank)) {
    const path = resolve(tokenFile.base, String(tokenFile.value));
    try {
      picked.set('token', { ...tokenFile, value: readFileSync(path, 'utf8').trim(), source: `token file ${path} (${tokenFile.source})` });
    } catch (err) {
      throw new ConfigError(`cannot read the token file ${path} (${tokenFile.source}): ${(err as Error).message}`);
    }
    tokenFile.value = path;
  } else {
    picked.delete('tokenFile');
  }

  const missing = ['server', 'agent', 'token', 'hooks'].filter((k) => !picked.has(k));
  if (missing.length) {
    throw new ConfigError(
      'missing: ' +
        missing
          .map((k) => {
            const o = AGENT_OPTIONS.find((x) => x.key === k)!;
            return `${o.flag.split(' ')[0]} (or ${o.env}, or '${k}' in the config file)`;
          })
          .join('; '),
    );
  }

  for (const k of ['hooks', 'state', 'caFile', 'clientCert', 'clientKey']) {
    const p = picked.get(k);
    if (p && typeof p.value === 'string') p.value = resolve(p.base, p.value);
  }
  const raw: Record<string, unknown> = Object.fromEntries([...picked].map(([k, p]) => [k, p.value]));
  raw.state ??= defaultStateRoot(env);
  const once = picked.get('once');
  if (!picked.has('wait') && once && (once.value === true || /^(1|true|yes|on|y|enabled)$/i.test(String(once.value)))) raw.wait = 0;

  const parsed = AgentConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const key = String(issue.path[0] ?? '');
      const where = picked.get(key)?.source ?? 'default';
      return `  - ${key} (${where}): ${issue.message}`;
    });
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const config = parsed.data;
  let isDir = false;
  try {
    isDir = statSync(config.hooks).isDirectory();
  } catch {
    // reported below
  }
  // A mistyped hooks path would silently turn every command into `skipped`.
  if (!isDir) throw new ConfigError(`hooks (${picked.get('hooks')!.source}): ${config.hooks} is not a directory`);
  for (const k of ['caFile', 'clientCert', 'clientKey'] as const) {
    const path = config[k];
    if (path === undefined) continue;
    try {
      readFileSync(path);
    } catch (err) {
      throw new ConfigError(`${k} (${picked.get(k)!.source}): cannot read ${path}: ${(err as Error).message}`);
    }
  }
  return Object.freeze(config);
}

/** 127.0.0.0/8, ::1 and localhost: the only hosts a bearer token may travel to over plain http. */
export function isLoopback(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

/** $XDG_STATE_HOME/rebootctl, else ~/.local/state/rebootctl (the agent adds /<agent id>). */
export function defaultStateRoot(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_STATE_HOME;
  if (xdg && isAbsolute(xdg)) return join(xdg, 'rebootctl');
  return join(env.HOME || homedir(), '.local', 'state', 'rebootctl');
}

/** The `--config` file: its values by key, unknown keys refused (also read by `rebootctl agent check`). */
export async function readConfigFile(path: string): Promise<{ path: string; values: Record<string, unknown> }> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read the config file ${path}: ${(err as Error).message}`);
  }
  let values: unknown;
  try {
    if (extname(path).toLowerCase() === '.json') values = JSON.parse(text);
    else {
      // Loaded only for a YAML file (JSON is YAML too); the lean daemon never loads it.
      const { parse } = await import('yaml');
      values = parse(text);
    }
  } catch (err) {
    throw new ConfigError(`the config file ${path} is not valid ${extname(path) === '.json' ? 'JSON' : 'YAML'}: ${(err as Error).message}`);
  }
  values ??= {};
  if (typeof values !== 'object' || Array.isArray(values))
    throw new ConfigError(`the config file ${path} must hold a mapping of option names to values`);
  for (const key of Object.keys(values as object)) {
    if (!FILE_KEYS.includes(key)) {
      const line = text
        .split('\n')
        .findIndex((l) => new RegExp(`^\\s*["']?${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}["']?\\s*:`).test(l));
      throw new ConfigError(`${path}${line >= 0 ? `:${line + 1}` : ''}: unknown key '${key}' (known keys: ${FILE_KEYS.join(', ')})`);
    }
  }
  return { path, values: values as Record<string, unknown> };
}
