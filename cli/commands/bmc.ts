// `rebootctl bmc subscribe|check`: creates and verifies a node's Redfish EventDestination on its BMC.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { loadInventoryFile } from '../../lambdas/core/inventory.ts';
import { loadMapping, mappedRegistryPrefixes } from '../../lambdas/core/redfish/mapping.ts';
import {
  BmcUnreachable,
  checkSubscription,
  redactDestination,
  subscribe,
  subscriptionBody,
  type HttpResponse,
  type RedfishHttp,
  type SubscriptionSpec,
} from '../../lambdas/core/redfish/subscription.ts';
import { contextTarget } from '../../lambdas/core/redfish/translate.ts';

const DEFAULT_NODES_FILE = fileURLToPath(new URL('../../config/nodes.example.yaml', import.meta.url));
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

/** Exit codes: 0 done / present, 1 the BMC refused or the subscription is gone, 2 could not try (usage, inventory, network). */
const EXIT_FAILED = 1;
const EXIT_CANNOT = 2;

class UsageError extends Error {
  override readonly name = 'UsageError';
}

interface BmcOptions {
  bmc: string;
  user: string;
  passwordEnv: string;
  node: string;
  server: string;
  tokenInUrl?: boolean;
  tokenEnv?: string;
  nodesFile?: string;
  context?: string;
  xpu?: string;
  insecure?: boolean;
  ca?: string;
  timeout: string;
}

interface SubscribeOptions extends BmcOptions {
  filters: boolean;
  registryPrefixes?: string;
  resourceTypes?: string;
  replace?: boolean;
}

function withCommonOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--bmc <url>', 'the BMC, e.g. https://10.0.0.5')
    .requiredOption('--user <name>', 'BMC user')
    .requiredOption('--password-env <var>', 'name of the environment variable holding the BMC password (never on the command line)')
    .requiredOption('--node <id>', 'the node in the inventory')
    .requiredOption('--server <url>', "the coordinator's API base URL, e.g. https://api.example.com")
    .option('--token-in-url', 'also put the bmcToken into the Destination (?access_token=) for BMCs that send no HttpHeaders')
    .option('--token-env <var>', 'environment variable holding the bmcToken, when the inventory stores only its sha256 hash')
    .option('--nodes-file <file>', 'inventory YAML (default: $NODES_FILE or config/nodes.example.yaml)')
    .option('--xpu <id>', "this is the BMC of that xPU: Context becomes '<node>.<xpu>', so events without an origin are the xPU's")
    .option('--context <text>', 'subscription Context (default: the node id, or <node>.<xpu> with --xpu)')
    .option('--insecure', "accept the BMC's self-signed TLS certificate")
    .option('--ca <file>', "PEM file with the CA of the BMC's certificate")
    .option('--timeout <seconds>', 'per-request timeout', '20');
}

export function registerBmcCommands(program: Command): void {
  const bmc = program.command('bmc').description("manage the Redfish event subscription on a node's BMC");

  withCommonOptions(bmc.command('subscribe'))
    .description(
      'create the EventDestination that pushes Redfish events to POST /v1/events/redfish. Any 2xx is success. ' +
        'A BMC rejecting a filter property (bmcweb and EventTypes) gets the subscription again without filters.',
    )
    .option(
      '--no-filters',
      'send no EventTypes/RegistryPrefixes/ResourceTypes (older iDRACs send bare MessageIds a prefix filter would drop)',
    )
    .option('--registry-prefixes <list>', 'comma-separated RegistryPrefixes (default: the prefixes the mapping turns into events)')
    .option('--resource-types <list>', 'comma-separated ResourceTypes (default: none, since many events carry no OriginOfCondition)')
    .option('--replace', 'delete an existing subscription with the same Destination and Context first (e.g. after a token rotation)')
    .action(async (opts: SubscribeOptions) => {
      process.exitCode = await runSubscribe(opts);
    });

  withCommonOptions(bmc.command('check'))
    .description(
      'exit 0 while the EventDestination with our Destination and Context exists on the BMC, 1 when it is gone, 2 when the BMC cannot be asked',
    )
    .action(async (opts: BmcOptions) => {
      process.exitCode = await runCheck(opts);
    });
}

function list(v: string | undefined): string[] | undefined {
  return v === undefined
    ? undefined
    : v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
}

interface Prepared {
  spec: SubscriptionSpec;
  http: RedfishHttp;
  bmcUrl: URL;
}

function prepare(opts: BmcOptions): Prepared {
  const password = process.env[opts.passwordEnv];
  if (!password) throw new UsageError(`environment variable ${opts.passwordEnv} (--password-env) is not set`);
  let bmcUrl: URL;
  try {
    bmcUrl = new URL(opts.bmc);
  } catch {
    throw new UsageError(`--bmc '${opts.bmc}' is not a URL`);
  }
  if (bmcUrl.protocol !== 'https:' && bmcUrl.protocol !== 'http:') throw new UsageError('--bmc must be an http(s) URL');
  try {
    new URL(opts.server);
  } catch {
    throw new UsageError(`--server '${opts.server}' is not a URL`);
  }
  const timeoutSeconds = Number(opts.timeout);
  if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) throw new UsageError('--timeout must be a positive number of seconds');

  const nodesFile = opts.nodesFile ?? process.env.NODES_FILE ?? DEFAULT_NODES_FILE;
  const inventory = loadInventoryFile(nodesFile);
  const node = inventory.nodes.find((n) => n.id === opts.node);
  if (!node) throw new UsageError(`node '${opts.node}' is not in ${nodesFile}`);
  const bmcToken = resolveBmcToken(node.id, node.bmcToken, opts.tokenEnv, nodesFile);
  if (opts.xpu !== undefined && !node.xpus.some((x) => x.id === opts.xpu))
    throw new UsageError(`node '${node.id}' has no xPU '${opts.xpu}'`);
  const context = opts.context ?? (opts.xpu !== undefined ? `${node.id}.${opts.xpu}` : node.id);
  const named = contextTarget(context, new Set(inventory.nodes.map((n) => n.id)));
  // The webhook answers 403 to a Context naming another node: catch the typo here, not as lost events later.
  if (named && named.node !== node.id) throw new UsageError(`--context '${context}' names node '${named.node}', not '${node.id}'`);

  let ca: Buffer | undefined;
  if (opts.ca) {
    try {
      ca = readFileSync(opts.ca);
    } catch (err) {
      throw new UsageError(`--ca ${opts.ca}: ${(err as Error).message}`);
    }
  }
  const auth = `Basic ${Buffer.from(`${opts.user}:${password}`).toString('base64')}`;
  return {
    spec: { server: opts.server, bmcToken, tokenInUrl: Boolean(opts.tokenInUrl), context },
    http: nodeHttp(bmcUrl, auth, { insecure: Boolean(opts.insecure), ca }, timeoutSeconds * 1000),
    bmcUrl,
  };
}

function resolveBmcToken(nodeId: string, stored: string | undefined, tokenEnv: string | undefined, file: string): string {
  const given = tokenEnv === undefined ? undefined : process.env[tokenEnv];
  if (tokenEnv !== undefined && !given) throw new UsageError(`environment variable ${tokenEnv} (--token-env) is not set`);
  if (!stored) throw new UsageError(`node '${nodeId}' has no bmcToken in ${file}`);
  if (stored.startsWith('sha256:')) {
    if (!given)
      throw new UsageError(`node '${nodeId}' stores only the sha256 of its bmcToken in ${file}; pass the token with --token-env VAR`);
    const hash = createHash('sha256').update(given).digest('hex');
    if (hash !== stored.slice('sha256:'.length).toLowerCase())
      throw new UsageError(`the token in ${tokenEnv} does not match node '${nodeId}' bmcToken hash`);
    return given;
  }
  if (given && given !== stored) throw new UsageError(`the token in ${tokenEnv} differs from node '${nodeId}' bmcToken in ${file}`);
  return stored;
}

/** The HTTP port over node:http(s): BMCs mostly serve self-signed certificates, which fetch cannot be told to accept. */
function nodeHttp(base: URL, auth: string, tls: { insecure: boolean; ca?: Buffer }, timeoutMs: number): RedfishHttp {
  return (req) =>
    new Promise<HttpResponse>((resolve, reject) => {
      const abs = new URL(req.path, base);
      // Keep credentials on the BMC we were given, even when it names itself differently in @odata.id or Location.
      const url = new URL(abs.pathname + abs.search, base);
      const payload = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body));
      const headers: Record<string, string> = { Authorization: auth, Accept: 'application/json', 'OData-Version': '4.0' };
      if (payload) {
        headers['Content-Type'] = 'application/json';
        headers['Content-Length'] = String(payload.length);
      }
      const options: https.RequestOptions = { method: req.method, headers, timeout: timeoutMs };
      if (url.protocol === 'https:') {
        options.rejectUnauthorized = !tls.insecure;
        if (tls.ca) options.ca = tls.ca;
      }
      const what = `${req.method} ${url.origin}${url.pathname}`;
      const r = (url.protocol === 'https:' ? https : http).request(url, options, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_RESPONSE_BYTES) r.destroy(new Error(`answer larger than ${MAX_RESPONSE_BYTES} bytes`));
          else chunks.push(c);
        });
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown;
          if (text.trim() !== '') {
            try {
              body = JSON.parse(text);
            } catch {
              body = text;
            }
          }
          const h: Record<string, string | undefined> = {};
          for (const [k, v] of Object.entries(res.headers)) h[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
          resolve({ status: res.statusCode ?? 0, headers: h, body });
        });
        res.on('error', (e) => reject(new BmcUnreachable(`${what}: ${e.message}`)));
      });
      r.on('timeout', () => r.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
      r.on('error', (e) => reject(new BmcUnreachable(`${what}: ${e.message}`)));
      r.end(payload);
    });
}

function fail(cmd: 'subscribe' | 'check', err: unknown): number {
  const e = err as Error;
  const name = e?.name && e.name !== 'Error' ? `${e.name}: ` : '';
  console.error(`rebootctl bmc ${cmd}: ${name}${e?.message ?? String(err)}`);
  // For check, 1 must mean "gone": anything that stopped us from looking is 2.
  if (cmd === 'check') return EXIT_CANNOT;
  return ['UsageError', 'InventoryError', 'MappingFileInvalid', 'BmcUnreachable'].includes(e?.name) ? EXIT_CANNOT : EXIT_FAILED;
}

async function runSubscribe(opts: SubscribeOptions): Promise<number> {
  let prepared: Prepared;
  try {
    prepared = prepare(opts);
    if (opts.filters) {
      prepared.spec.registryPrefixes = list(opts.registryPrefixes) ?? mappedRegistryPrefixes(loadMapping());
      const types = list(opts.resourceTypes);
      if (types) prepared.spec.resourceTypes = types;
    }
  } catch (err) {
    return fail('subscribe', err);
  }
  const { spec, http: port, bmcUrl } = prepared;
  const body = subscriptionBody(spec, opts.filters);
  try {
    const out = await subscribe(port, spec, { replace: opts.replace, filters: opts.filters });
    if (out.kind === 'exists') {
      console.log(
        `already subscribed: ${new URL(out.uri, bmcUrl).href} has Context '${spec.context}' and our Destination (use --replace to recreate it)`,
      );
      return 0;
    }
    for (const w of out.warnings) console.error(`warning: ${w}`);
    for (const uri of out.replaced) console.log(`deleted the previous subscription ${uri}`);
    if (out.rejectedFilters.length > 0) {
      console.log(
        `the BMC rejected ${out.rejectedFilters.join(', ')} (HTTP 400); subscribed again without filters: ` +
          'it will push every event, and the coordinator ignores what it does not map',
      );
    }
    console.log(
      `subscribed node '${opts.node}' (HTTP ${out.status}): ${out.uri ? new URL(out.uri, bmcUrl).href : '(the BMC gave no Location)'}`,
    );
    console.log(`  Destination ${redactDestination(String(body.Destination))}  Context '${spec.context}'`);
    if (out.filtered) {
      const f = ['EventTypes', 'RegistryPrefixes', 'ResourceTypes']
        .filter((k) => k in body)
        .map((k) => `${k} ${(body[k] as string[]).join(',')}`);
      console.log(`  filters: ${f.join('; ')}`);
    }
    return 0;
  } catch (err) {
    return fail('subscribe', err);
  }
}

async function runCheck(opts: BmcOptions): Promise<number> {
  try {
    const { spec, http: port, bmcUrl } = prepare(opts);
    const out = await checkSubscription(port, spec);
    const dest = redactDestination(subscriptionBody(spec, false).Destination as string);
    if (out.kind === 'present') {
      console.log(`subscribed: ${new URL(out.uri, bmcUrl).href} (Destination ${dest}, Context '${spec.context}')`);
      return 0;
    }
    console.error(
      `rebootctl bmc check: SubscriptionMissing: none of the ${out.total} subscription(s) on ${bmcUrl.origin} has Destination ${dest} ` +
        `and Context '${spec.context}'; run 'rebootctl bmc subscribe' again`,
    );
    return EXIT_FAILED;
  } catch (err) {
    return fail('check', err);
  }
}
